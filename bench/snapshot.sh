#!/bin/sh
# Builds a private, immutable copy of a commit for benchmarking (the working tree changes under
# concurrent edits and rebuilds): bench/snapshot.sh [COMMIT] [DIR] -> DIR with bin/ and dist/.
# Then: npm run bench -- --app DIR ...   (node_modules is shared with this checkout via a symlink)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
commit=$(git -C "$root" rev-parse --short "${1:-HEAD}")
dir=${2:-/tmp/orders-snap-$commit}
rm -rf "$dir"
mkdir -p "$dir"
git -C "$root" archive "$commit" | tar -x -C "$dir"
ln -s "$root/node_modules" "$dir/node_modules"
(cd "$dir" && "$root/node_modules/.bin/tsc" -p tsconfig.build.json)
echo "$commit" > "$dir/COMMIT"
echo "$dir"
