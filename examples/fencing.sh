#!/bin/sh
# A paused holder, stopped by its fencing token.
#
#   examples/fencing.sh [DLOCK]     (DLOCK: the dlock binary, default `dlock`)
#
# Holder A takes the lock "ledger" and is frozen (SIGSTOP: a GC pause, a VM
# migration, a stuck disk) past its 2 s lease.  Holder B takes the lock and
# writes.  A wakes up and writes too, before anything tells it that its lease
# is gone.  The resource (here an SQLite file, standing for any database the
# job writes to) keeps the highest token it has seen and rejects a write that
# carries a lower one, in the same transaction as the write.  Needs sqlite3.
set -eu
dlock=${1:-dlock}
dir=$(mktemp -d)
a_pid=0 job_pgid=0
trap '[ $a_pid = 0 ] || kill -s CONT -- -$a_pid -$job_pgid 2>/dev/null || true; rm -rf "$dir"' EXIT
locks="sqlite://$dir/locks.db"
ledger="$dir/ledger.db"

sqlite3 "$ledger" "CREATE TABLE fence(resource TEXT PRIMARY KEY, token INTEGER NOT NULL);
                   INSERT INTO fence VALUES ('ledger', 0);
                   CREATE TABLE entries(who TEXT, token INTEGER);"

# The job's one write: claim the token, then write, in one transaction.  The
# claim changes no row when a newer holder has written already; the insert
# then adds nothing, and the job says so.
cat >"$dir/job.sh" <<'JOB'
sqlite3 "$LEDGER" "BEGIN IMMEDIATE;
  UPDATE fence SET token = $DLOCK_FENCE WHERE resource = 'ledger' AND token <= $DLOCK_FENCE;
  INSERT INTO entries SELECT '$WHO', $DLOCK_FENCE WHERE changes() = 1;
  SELECT CASE changes() WHEN 1 THEN '$WHO: written with token $DLOCK_FENCE'
         ELSE '$WHO: rejected, token $DLOCK_FENCE is stale' END;
  COMMIT;"
JOB
export LEDGER="$ledger"

# Holder A: its job ignores SIGTERM (inherited by its children), so that it
# can still write when it wakes; dlock puts it in a process group of its own.
setsid "$dlock" run -q -u "$locks" -t 2s -k 3s ledger -- \
    env WHO=A sh -c "trap '' TERM; echo \$\$ > '$dir/job.pid'; sleep 0.5; . '$dir/job.sh'" >"$dir/a.out" 2>&1 &
a_pid=$!
while [ ! -s "$dir/job.pid" ]; do sleep 0.05; done
job_pgid=$(cat "$dir/job.pid")
kill -s STOP -- -$a_pid -$job_pgid # freeze dlock and its job together
sleep 3                          # past A's 2 s lease

WHO=B "$dlock" run -u "$locks" -t 10s ledger -- sh "$dir/job.sh"

kill -s CONT -- -$job_pgid -$a_pid # A wakes up and writes with its old token
wait $a_pid || true
cat "$dir/a.out"

echo "ledger:"
sqlite3 "$ledger" "SELECT who, token FROM entries ORDER BY rowid;"
sqlite3 "$ledger" "SELECT count(*) FROM entries WHERE who = 'A';" | grep -qx 0
echo "A's late write was rejected."
