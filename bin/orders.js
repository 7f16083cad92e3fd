#!/usr/bin/env node
// The executable: everything lives in the compiled CLI.
import '../dist/cli.js';
