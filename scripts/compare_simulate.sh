#!/usr/bin/env bash
# Compare `duban simulate --json` of the pilot at two git revisions (the refactor's "done when").
#
#   scripts/compare_simulate.sh REV1 REV2 [-- extra simulate arguments]
#
# Each revision is checked out in a temporary git worktree and run with this checkout's .venv
# (PYTHONPATH pointing at the worktree, from inside it). Prints the number of lines and bytes of
# each output and the diff; exit 0 iff the two outputs are byte-identical.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 REV1 REV2 [-- simulate arguments]" >&2
    exit 2
fi
rev1=$1 rev2=$2
shift 2
[ "${1:-}" = "--" ] && shift
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(rule-of-law-pilot --units examples/units.example.toml --year 2026 --json)

repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
python=${PYTHON:-$repo/.venv/bin/python}
tmp=$(mktemp -d)
cleanup() {
    for tree in "$tmp"/tree-*; do
        [ -d "$tree" ] && git -C "$repo" worktree remove --force "$tree"
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

run() {  # run REV OUT: simulate at REV into OUT
    local rev=$1 out=$2 tree
    tree="$tmp/tree-$(git -C "$repo" rev-parse --short "$rev")-$RANDOM"
    git -C "$repo" worktree add --quiet --detach "$tree" "$rev"
    (
        cd "$tree"
        export PYTHONPATH="$tree" DUBAN_CONFIG="$tree/config.toml"
        # make sure the code under test is the worktree's, not this checkout's editable install
        "$python" -c 'import orchestrator, sys; assert orchestrator.__file__.startswith(sys.argv[1]), orchestrator.__file__' "$tree"
        "$python" -c 'import sys; from orchestrator.cli import main; sys.exit(main(sys.argv[1:]))' simulate "${args[@]}"
    ) >"$out"
}

run "$rev1" "$tmp/1.out"
run "$rev2" "$tmp/2.out"
for n in 1 2; do
    rev=$([ $n = 1 ] && echo "$rev1" || echo "$rev2")
    printf '%s (%s): %s lines, %s bytes, sha256 %s\n' "$rev" "$(git -C "$repo" rev-parse --short "$rev")" \
        "$(wc -l <"$tmp/$n.out")" "$(wc -c <"$tmp/$n.out")" "$(sha256sum "$tmp/$n.out" | cut -c1-16)"
done
if cmp -s "$tmp/1.out" "$tmp/2.out"; then
    echo "identical"
else
    diff -u --label "$rev1" --label "$rev2" "$tmp/1.out" "$tmp/2.out" | head -200
    exit 1
fi
