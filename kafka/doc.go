// Package kafka is the engine's adapter to Kafka. Everything the engine says to a broker goes
// through segmentio/kafka-go: creating topics, producing card events keyed by card token, and
// consuming partitions whose offsets the engine keeps in its own database.
//
// For a pilot on one machine, StartEmbedded runs an in-process Kafka-protocol broker (franz-go's
// kfake, with one fix to its consumer groups kept in third_party/kfake) and hands out its address. Nothing else in the package knows whether that address
// belongs to the embedded broker or to a real cluster.
//
// The engine keeps its consumers' positions in its database, in the transaction that applies
// what it read; the broker only balances partitions between consumer processes (RunGroup) and
// serves messages from a given offset (PartitionReader). Offsets committed to the broker are an
// advisory copy for lag dashboards (Claim.CommitAdvisory).
//
// Every kafka-go option that matters is set where the client is built, with the reason beside
// it: several kafka-go defaults are wrong for money (no acknowledgements, a one-second batch
// delay).
package kafka
