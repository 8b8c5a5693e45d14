// Package faults is fraudwatch's fault-injection suite; it holds only tests.
//
// Each scenario runs real OS processes of the built fraudwatch binary
// ("fraudwatch process") against a Kafka cluster, produces a workload whose
// outcome is known in advance (per-user transactions, the expected alert ids,
// the bad records that belong in the dead-letter topic) and injects failures
// while it flows:
//
//   - R1: SIGKILL one of several instances every few seconds and restart it,
//     on the same disk, an empty disk or a new directory; R1s is the same
//     with static group members (--group-instance-id per instance);
//   - R2: scale one instance to three and back to one under load;
//   - R3: SIGKILL a broker of a 3-node cluster and restart it, then the same
//     for the controller leader, and report how long processing stalled;
//   - R4: damage an instance's LevelDB files (flipped bytes, deleted table
//     files, a truncated manifest, a deleted directory, files deleted while it
//     runs); it must say so in its log and rebuild from the changelog.
//
// Every scenario passes only when each user's counts and sums equal the
// truth, the alert set equals the truth by alert_id, and every bad record is
// in the dead-letter topic. The figures are logged as a "figures:" line.
//
// The cluster is the embedded one (kfake, three nodes) by default, at small
// sizes; with FRAUDWATCH_TEST_BROKERS naming a cluster started by
// scripts/kafka it is real Apache Kafka at full sizes (R1 at 200,000 events)
// and R3 runs too: it needs scripts/kafka to kill and restart brokers.
// -args -soak=N multiplies every size by N for a longer run.
package faults
