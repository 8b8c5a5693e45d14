package app

import (
	"cmp"
	"hash/maphash"
	"slices"
)

// cache is the memory of a store: its cached keys and values, laid out so
// that the garbage collector does not visit them one by one. Keys and values
// are copied into large byte chunks, entries are structs without pointers in
// slabs, and the index maps a 64-bit hash of a key to an entry number; none of
// these hold pointers but the few slices of chunks and slabs, so a collection
// marks a few thousand objects for a million cached users, not two million.
// A view service holds every user's state, and its collections were the tail
// of its query latency. BenchmarkStoreGC, a full collection with users of
// 150-byte values cached: 100,000 users took 3.60-6.66 ms as a map of strings
// to entries with a value each (the layout before this one), 0.38-0.59 ms laid
// out this way; 1M users 52-148 against 0.82-1.35 ms (three runs each).
//
// A value is written in place while nothing can read the old one; once Get
// lent it (returned the chunk's bytes to a caller, who may read them after
// the store's lock is released), a new value goes to new bytes and the old
// ones are never written again. Space that no entry uses is garbage; when it
// is a quarter of the chunks, compact moves the entries of the emptiest
// chunks to new ones and lets the emptied chunks go (to the garbage
// collector, which frees them once no lent value refers to them; never back
// to this cache, since a caller may still read them).
//
// A value may also be kept as its caller gave it (keep), outside the
// chunks: a processor's store keeps the large states goka encodes (see
// store.processor). There are few of them, and the state codec finds the
// decoded form of such a slice by its address.
//
// cache is not safe for concurrent use: store calls it with its lock held.
type cache struct {
	seed  maphash.Seed
	mask  uint64           // applied to every hash: all ones, or a few bits in tests, to force collisions
	index map[uint64]int32 // a key's hash to the newest entry of that hash; entries of one hash are chained by next
	kept  map[int32][]byte // the values of the entries kept as given
	slabs [][]ent          // entry i is slabs[i/entSlab][i%entSlab]
	slots int32            // entries ever taken from the slabs
	free  []int32          // entries not in use
	used  int              // entries in use
	hand  int32            // where the store's eviction looks next

	chunks     [][]byte // nil: let go by compact
	live       []int    // per chunk: the bytes of the entries in use
	freeChunks []int32  // places in chunks that are nil
	cur        int32    // the chunk new bytes are taken from; -1: none yet
	fill       int      // bytes taken from chunks[cur]
	arena      int      // bytes of all chunks
	garbage    int      // bytes of chunks taken and no longer used (the unused tail of a chunk left behind too)
	compacting bool
}

// ent is a cached key and its value: key and value are adjacent in
// chunks[chunk] at off, with room bytes taken for them (a value may grow in
// place up to it).
type ent struct {
	hash  uint64
	chunk int32
	off   uint32
	klen  uint32
	vlen  uint32
	room  uint32
	next  int32 // the next entry of the same hash; -1: none
	flags uint8
}

const (
	entUsed  = 1 << iota
	entNil   // the value is nil: absent, or a deletion
	entLent  // the value's bytes were returned by lend: they are never written again
	entKept  // the value is kept as given, in kept, not in the chunks
	entDirty // store: the value is yet to be written back
	entRef   // store: read or written since its eviction last went past it
)

const (
	// entSlab is the entries allocated at once.
	entSlab = 4096
	// chunkBytes is the size of a chunk of keys and values (a larger value
	// gets a chunk of its own).
	chunkBytes = 64 << 10
	// compactMinBytes: compact only once garbage is at least this.
	compactMinBytes = 2 * chunkBytes
)

func newCache() cache {
	return cache{seed: maphash.MakeSeed(), mask: ^uint64(0), index: map[uint64]int32{}, kept: map[int32][]byte{}, cur: -1}
}

func (c *cache) ent(i int32) *ent { return &c.slabs[i/entSlab][i%entSlab] }

func (c *cache) hash(key string) uint64 { return maphash.String(c.seed, key) & c.mask }

// find returns the entry of key, -1 if none.
func (c *cache) find(key string) int32 {
	i, ok := c.index[c.hash(key)]
	for ok && i >= 0 {
		e := c.ent(i)
		if string(c.key(e)) == key {
			return i
		}
		i = e.next
	}
	return -1
}

func (c *cache) key(e *ent) []byte { return c.chunks[e.chunk][e.off : e.off+e.klen] }

// value returns entry i's value: nil if it has none, else its bytes in the
// chunk (capacity clipped, so an append does not write into the chunk), or
// the value kept. Only a lent value may be read after the store's lock is
// released.
func (c *cache) value(i int32) []byte {
	e := c.ent(i)
	switch {
	case e.flags&entNil != 0:
		return nil
	case e.flags&entKept != 0:
		return c.kept[i]
	}
	start := e.off + e.klen
	end := start + e.vlen
	return c.chunks[e.chunk][start:end:end]
}

// lend returns entry i's value for a caller that reads it after the lock is
// released: from now on its bytes are never written.
func (c *cache) lend(i int32) []byte {
	c.ent(i).flags |= entLent
	return c.value(i)
}

// roomFor is the room taken for a key and value of n bytes: an eighth more,
// so a value that grows a little (a user's state gains a window) is
// rewritten in place.
func roomFor(n int) uint32 { return uint32(n + n/8 + 8) }

// add caches key with val (nil: none), not dirty, and returns its entry.
// key must not be cached.
func (c *cache) add(key string, val []byte) int32 {
	room := roomFor(len(key) + len(val))
	ch, off, buf := c.alloc(room)
	var i int32
	if n := len(c.free); n > 0 {
		i, c.free = c.free[n-1], c.free[:n-1]
	} else {
		if c.slots%entSlab == 0 {
			c.slabs = append(c.slabs, make([]ent, entSlab))
		}
		i = c.slots
		c.slots++
	}
	h := c.hash(key)
	e := c.ent(i)
	*e = ent{hash: h, chunk: ch, off: off, klen: uint32(len(key)), room: room, next: -1, flags: entUsed}
	if head, ok := c.index[h]; ok {
		e.next = head
	}
	c.index[h] = i
	copy(buf, key)
	c.put(e, buf, val)
	c.used++
	return i
}

// set gives entry i a copy of val (nil: none): in place if it fits and the
// old value was never lent, else in new bytes.
func (c *cache) set(i int32, val []byte) {
	e := c.ent(i)
	if e.flags&entKept != 0 {
		delete(c.kept, i)
		e.flags &^= entKept
	}
	need := e.klen + uint32(len(val))
	if e.flags&entLent != 0 || need > e.room {
		room := roomFor(int(need))
		ch, off, buf := c.alloc(room) // may move e
		copy(buf, c.key(e))
		c.release(e)
		e.chunk, e.off, e.room = ch, off, room
		e.flags &^= entLent
	}
	c.put(e, c.chunks[e.chunk][e.off:e.off+e.room], val)
}

// keep gives entry i the value val itself (not nil), which it never writes.
func (c *cache) keep(i int32, val []byte) {
	e := c.ent(i)
	c.kept[i] = val
	e.vlen = uint32(len(val))
	e.flags = e.flags&^entNil | entKept
}

// put writes val after the key in e's bytes buf.
func (c *cache) put(e *ent, buf, val []byte) {
	e.vlen = uint32(copy(buf[e.klen:], val))
	if val == nil {
		e.flags |= entNil
	} else {
		e.flags &^= entNil
	}
}

// remove drops entry i.
func (c *cache) remove(i int32) {
	e := c.ent(i)
	if head := c.index[e.hash]; head == i {
		if e.next >= 0 {
			c.index[e.hash] = e.next
		} else {
			delete(c.index, e.hash)
		}
	} else {
		for p := c.ent(head); ; p = c.ent(p.next) {
			if p.next == i {
				p.next = e.next
				break
			}
		}
	}
	c.release(e)
	delete(c.kept, i)
	*e = ent{chunk: -1, next: -1}
	c.free = append(c.free, i)
	c.used--
}

// release makes e's bytes garbage.
func (c *cache) release(e *ent) {
	c.live[e.chunk] -= int(e.room)
	c.garbage += int(e.room)
}

// alloc takes n bytes, compacting first if a quarter of the chunks is
// garbage (which may move any entry), and returns their chunk, offset and
// bytes.
func (c *cache) alloc(n uint32) (int32, uint32, []byte) {
	if !c.compacting && c.garbage >= compactMinBytes && c.garbage*4 >= c.arena {
		c.compact()
	}
	if c.cur < 0 || c.fill+int(n) > len(c.chunks[c.cur]) {
		c.newChunk(int(n))
	}
	off := c.fill
	c.fill += int(n)
	c.live[c.cur] += int(n)
	return c.cur, uint32(off), c.chunks[c.cur][off:c.fill:c.fill]
}

// newChunk starts a chunk of at least n bytes; the tail of the one before
// is garbage.
func (c *cache) newChunk(n int) {
	if c.cur >= 0 {
		c.garbage += len(c.chunks[c.cur]) - c.fill
	}
	buf := make([]byte, max(chunkBytes, n))
	if k := len(c.freeChunks); k > 0 {
		c.cur, c.freeChunks = c.freeChunks[k-1], c.freeChunks[:k-1]
		c.chunks[c.cur], c.live[c.cur] = buf, 0
	} else {
		c.cur = int32(len(c.chunks))
		c.chunks, c.live = append(c.chunks, buf), append(c.live, 0)
	}
	c.fill = 0
	c.arena += len(buf)
}

// compact empties the chunks with the least in use, emptiest first, until
// they hold at least half the garbage: their entries move to new bytes, and
// the chunks are let go.
func (c *cache) compact() {
	c.compacting = true
	defer func() { c.compacting = false }()
	var cands []int32
	for ch, b := range c.chunks {
		if b != nil && int32(ch) != c.cur {
			cands = append(cands, int32(ch))
		}
	}
	// Emptiest first: the most garbage for the fewest bytes moved.
	slices.SortFunc(cands, func(a, b int32) int {
		return cmp.Compare(float64(c.live[a])/float64(len(c.chunks[a])), float64(c.live[b])/float64(len(c.chunks[b])))
	})
	moving := make([]bool, len(c.chunks))
	k, freed := 0, 0
	for ; k < len(cands) && freed*2 < c.garbage; k++ {
		moving[cands[k]] = true
		freed += len(c.chunks[cands[k]]) - c.live[cands[k]]
	}
	picked := cands[:k]
	if k == 0 {
		return
	}
	for i := range c.slots {
		e := c.ent(i)
		if e.flags&entUsed == 0 || int(e.chunk) >= len(moving) || !moving[e.chunk] {
			continue
		}
		n := e.klen
		if e.flags&entKept == 0 {
			n += e.vlen
		}
		ch, off, buf := c.alloc(e.room)
		copy(buf, c.chunks[e.chunk][e.off:e.off+n])
		c.release(e)
		e.chunk, e.off = ch, off
		e.flags &^= entLent // the new bytes were never lent
	}
	for _, ch := range picked { // all garbage now
		c.garbage -= len(c.chunks[ch])
		c.arena -= len(c.chunks[ch])
		c.chunks[ch], c.live[ch] = nil, 0
		c.freeChunks = append(c.freeChunks, ch)
	}
}
