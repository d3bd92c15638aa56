#!/bin/sh
# Mutation check of the delivery guarantee (make mutate): each mutation
# breaks one rule of docs/design.md §2 in a copy of the source, given to the
# compiler with -overlay (the tree is never touched), and the agent's unit
# tests (agent/ledger and the fake-sink tests in agent/) must fail. A
# mutation that survives means a rule no unit test guards.
set -eu
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
survived=0

# mutate NAME FILE FROM TO: replace the line FROM (exact, once) by TO.
mutate() {
	name=$1 file=$2 from=$3 to=$4
	out="$tmp/$(echo "$name" | tr ' ' _).go"
	if ! grep -qF -- "$from" "$file"; then
		echo "mutate: $name: the line to mutate is not in $file any more; update scripts/mutate.sh" >&2
		exit 2
	fi
	awk -v from="$from" -v to="$to" 'index($0, from) && !done { sub(/.*/, to); done = 1 } { print }' "$file" > "$out"
	printf '{"Replace":{"%s":"%s"}}\n' "$PWD/$file" "$out" > "$tmp/overlay.json"
	if go test -count=1 -overlay "$tmp/overlay.json" -run 'Test' ./agent/ledger/ ./agent/ > "$tmp/log" 2>&1; then
		echo "SURVIVED: $name (no unit test failed)"
		survived=$((survived + 1))
	elif ! grep -q -- '--- FAIL' "$tmp/log"; then
		echo "mutate: $name does not build or the tests did not run:" >&2
		cat "$tmp/log" >&2
		exit 2
	else
		echo "killed:   $name ($(grep -c -- '--- FAIL' "$tmp/log") failing tests, e.g. $(grep -m1 -- '--- FAIL' "$tmp/log" | sed 's/--- FAIL: //'))"
	fi
}

mutate "contiguity: commit past a referenced chunk" agent/ledger/ledger.go \
	'if s.pending[i].refs.Load() != 0 {' 'if false {'
mutate "sent mark: not recorded" agent/ledger/ledger.go \
	's.sent[run] = m' '_ = m'
mutate "sent mark: not honoured after a restart" agent/ledger/ledger.go \
	'return ok && !last.Less(m)' 'return ok \&\& false \&\& !last.Less(m)'
mutate "barrier: send without waiting for the save" agent/sender.go \
	'if r.out.barrier > 0 && !s.ledger.Durable(r.out.barrier) {' 'if false {'
mutate "barrier: durable before the save" agent/ledger/ledger.go \
	'func (l *Ledger) Durable(gen uint64) bool { return gen <= l.saveGen.Load() }' 'func (l *Ledger) Durable(gen uint64) bool { return true }'
mutate "window: never wait" agent/ledger/ledger.go \
	'if s.pendingBytes <= limit || len(s.pending) == 0 {' 'if true {'

if [ "$survived" -gt 0 ]; then
	echo "$survived mutation(s) survived" >&2
	exit 1
fi
echo "every mutation was caught"
