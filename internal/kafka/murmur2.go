package kafka

import "hash"

// Murmur2 returns a hash.Hash32 computing Kafka's default partitioner hash:
// murmur2 with Kafka's seed, masked to 31 bits. Goka (processor, emitter,
// view) and sarama's custom hash partitioner take |int32(Sum32())| % n, Kafka's
// Java client takes (murmur2 & 0x7fffffff) % n: returning the masked value
// makes all of them pick the same partition for a key.
func Murmur2() hash.Hash32 { return &murmur2{} }

// Murmur2Partition is the partition Kafka's default partitioner picks for key.
func Murmur2Partition(key []byte, partitions int32) int32 {
	return int32(murmur2Sum(key) & 0x7fffffff % uint32(partitions))
}

type murmur2 struct{ buf []byte }

func (m *murmur2) Write(p []byte) (int, error) { m.buf = append(m.buf, p...); return len(p), nil }
func (m *murmur2) Sum(b []byte) []byte {
	v := m.Sum32()
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}
func (m *murmur2) Reset()         { m.buf = m.buf[:0] }
func (m *murmur2) Size() int      { return 4 }
func (m *murmur2) BlockSize() int { return 4 }
func (m *murmur2) Sum32() uint32  { return murmur2Sum(m.buf) & 0x7fffffff }

// murmur2Sum is Kafka's Utils.murmur2 (seed 0x9747b28c).
func murmur2Sum(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	length := len(data)
	h := seed ^ uint32(length)
	n := length / 4
	for i := 0; i < n; i++ {
		k := uint32(data[4*i]) | uint32(data[4*i+1])<<8 | uint32(data[4*i+2])<<16 | uint32(data[4*i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[4*n:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
