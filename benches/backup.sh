#!/bin/sh
# Backup, restore, export and erase times on a store, against `cp -r` of the
# same folder in the same run (the peer: what copying the files costs).
#
#   target/release/gyrus --data /tmp/large demo --scale large --no-serve --no-train
#   benches/backup.sh /tmp/large
set -eu
DATA=${1:?usage: benches/backup.sh DATA_DIR}
GYRUS=${GYRUS:-target/release/gyrus}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
sync
timed() { # label, command...
    label=$1; shift
    /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" > "$WORK/out" 2>&1 || { cat "$WORK/out"; exit 1; }
    read -r secs kib < "$WORK/time"
    printf '| %s | %s s | %s MiB |\n' "$label" "$secs" "$((kib / 1024))"
}
bytes=$(du -sb "$DATA" | cut -f1)
echo "store: $DATA, $((bytes / 1048576)) MiB; $(nproc) cores; load $(cut -d' ' -f1 /proc/loadavg)"
echo
echo '| step | wall | peak RSS |'
echo '|---|---:|---:|'
timed 'cp -r (peer)' cp -r "$DATA" "$WORK/cp"
rm -rf "$WORK/cp"
timed 'gyrus backup (whole store)' "$GYRUS" --data "$DATA" backup --to "$WORK/backup"
tail -1 "$WORK/out" | sed 's/^/    /' >&2
timed 'gyrus restore (into an empty store)' "$GYRUS" --data "$WORK/restored" restore --from "$WORK/backup"
for t in $("$GYRUS" --data "$DATA" tenants list | awk 'NR > 1 { print $1 }'); do
    "$GYRUS" --data "$DATA" tables --tenant "$t" > "$WORK/a"
    "$GYRUS" --data "$WORK/restored" tables --tenant "$t" > "$WORK/b"
    cmp -s "$WORK/a" "$WORK/b" || { echo "tenant $t differs after the restore"; diff "$WORK/a" "$WORK/b"; exit 1; }
done
first=$("$GYRUS" --data "$DATA" tenants list | awk 'NR == 2 { print $1 }')
timed "gyrus tenants export --tenant $first" "$GYRUS" --data "$DATA" tenants export --tenant "$first" --to "$WORK/export"
timed "gyrus tenants erase --tenant $first (of the restored copy)" "$GYRUS" --data "$WORK/restored" tenants erase --tenant "$first"
timed "gyrus restore (the export, after the erase)" "$GYRUS" --data "$WORK/restored" restore --from "$WORK/export"
"$GYRUS" --data "$DATA" tables --tenant "$first" > "$WORK/a"
"$GYRUS" --data "$WORK/restored" tables --tenant "$first" > "$WORK/b"
cmp -s "$WORK/a" "$WORK/b" || { echo "tenant $first differs after export, erase, restore"; exit 1; }
echo
echo "every tenant's tables (rows, files, bytes, version) identical after each restore"
