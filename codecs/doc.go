// Package codecs holds fraudwatch's goka.Codec implementations and the wire
// formats they carry: JSON at the edges (transactions in, alerts and
// dead letters out) and compact versioned binary for what only fraudwatch
// reads (the re-key loop record and the per-user state in the group table).
//
// Decoders never panic on arbitrary bytes; every decoder is fuzzed.
package codecs
