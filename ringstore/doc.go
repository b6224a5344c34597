// Package ringstore is the appliance's crash-safe segmented ring store: one
// append-only log per recording volume, made of fixed-size preallocated slot
// files recycled oldest first, with a bbolt index of every record kept on the
// boot SSD. It owns the volume's on-disk format, the single writer, recovery,
// eviction, reads, the cursor the mirror and API use, fsck and stats.
//
// # Volume layout
//
//	DIR/VOLUME              volume header (JSON + CRC): identity, slot size and count, format version
//	DIR/slots/000000.slot   slot files, each exactly SlotSize bytes, fallocate'd at format
//	...
//	INDEX (default DIR/index.db)  bbolt index; its meta bucket repeats the volume identity
//
// The store never creates, grows or deletes a file after format. Format
// writes VOLUME last (tmp, fsync, rename, fsync dir), so an interrupted
// format leaves no volume. Open refuses an index whose volume identity
// differs from VOLUME's (ErrIdentityMismatch). bbolt opens the index through
// the operating system, whatever the volume's vfs.FS.
//
// # Records
//
// A slot holds a prefix of valid records followed by garbage (zeros, older
// generations, torn writes). Every record is self-describing and 8-byte
// aligned; each commit tick's batch starts 4 KiB-aligned (a pad record fills
// the tail of the previous batch):
//
//	+--------+-----+------+-----+--------+------+---------+-----------+------+--------+
//	| magic  | ver | kind | flg | length | gen  | time0   | stream    | body | crc32c |
//	| 4 B    | 1 B | 1 B  | 2 B | 4 B    | 8 B  | 8 B ns  | len+name  | ...  | 4 B    |
//	+--------+-----+------+-----+--------+------+---------+-----------+------+--------+
//
// Kinds (record.go has the byte layout): frames (optional gap: cause and
// start; a frame table: track, time delta, DTS offset, key flag, size; the
// track table with codec parameter sets when the record starts with a
// keyframe or parameters changed; then the payloads), open (written and
// synced each time the store opens: marks a store restart for every stream,
// and the new generation), void (after a failed write: the tail of the failed
// slot from an offset is void), pad. A discontinuity (MarkGap, a restart) is
// carried by the next frames record of the stream as its gap flag and cause.
// Once the ring has evicted footage, every record carries the evicted flag,
// so a rebuild knows that missing footage before the oldest record was
// evicted.
// A record never spans slots; a video keyframe always starts a record (every
// keyframe is a record start, so reads start at records), as does a track
// table change, a gap, and 4 MiB of payload.
//
// # Generations
//
// Every time a slot is (re)started, either because the ring moved into it or
// because the store reopened and continues appending in it, the index hands out
// a new generation, strictly greater than any before, and persists it before
// anything is written under it. Within one slot the valid prefix has
// non-decreasing generations, all >= the slot's base generation, so stale
// bytes of an older use of the slot, or of a torn batch before the last
// reopen, can never be mistaken for records. (Gen, Offset) orders the whole log.
//
// A batch never shares a 512-byte sector with acknowledged records (a torn
// write may destroy a whole sector): after a torn tail the next batch starts
// at the next 4 KiB boundary, and scans that meet an invalid record at an
// unaligned offset continue at the next boundary only if the record there has
// a newer generation.
//
// # Write path
//
// Append copies frames into per-stream pending buffers (bounded: beyond the
// bound it returns ErrBackpressure), 64 KiB chunks from a store-wide pool
// mapped outside the Go heap that keeps about one tick of footage (chunks.go). Once per commit tick the writer encodes the
// pending frames as records, writes them at the head with large (512 KiB)
// writes, calls Datasync once per slot touched, and only then advances the
// durable watermark (acknowledgement, WaitDurable), then commits the tick's
// index entries in one bbolt transaction (Flush waits for that too, so a read
// after Flush sees the data). A failed write or Datasync seals the slot as
// suspect, raises an alarm, and re-writes the same batch into the next slot
// after a void record naming the failed range; it is never acknowledged from
// the failed slot, and Datasync is never retried on it. No vfs call that
// mutates anything is made while a bbolt write transaction is open.
//
// # Recycling (eviction)
//
// Before the first byte of a recycled slot is written: (1) in memory the slot's
// base generation is raised, so readers holding old locations detect the reuse;
// (2) one index transaction indexes what is durable in the old head, drops
// every entry of the new slot's old contents (updating the per-stream
// retention from the per-slot summaries), and makes it the head with the new
// generation; (3) the new records are written. Suspect slots are skipped by
// the ring (their entries are dropped when it passes them). With
// Options.MaxAge, whole slots whose newest footage is older are dropped from
// the index, oldest first (their bytes stay until the ring reuses them).
//
// # Recovery
//
// Open checks identities, then scans only the head slot from the index's
// checkpoint (the end of the last indexed batch), accepting only records of
// the generation the index last handed out and stopping at the first record
// that is torn or stale; it syncs and indexes what it found, takes and persists
// a new generation, writes and syncs an open record at the next 4 KiB boundary,
// and resumes appending there. Open reads no more of the index than the
// per-slot headers and per-stream summaries, so it is fast whatever the
// archive size. The index can always be rebuilt from the slot files alone
// (Rebuild), and after every recovery it equals that rebuild. Rebuild (and
// Check) skip a corrupt record to the next valid one, so one bad record loses
// nothing else.
//
// # Reads
//
// Readers take a record's location from the index, check the slot's base
// generation before and after reading it and the record's CRC and generation,
// so they are never handed recycled bytes; a recycled record is reported as
// GapEvicted and a corrupt one as GapCorrupt, and reading goes on. Spans
// derive spans and gaps from the index alone (gap flags, holes over 5 s,
// eviction before the oldest retained footage).
//
// # Tools
//
// Check (fsck) verifies every indexed record and that every valid record is
// indexed; Rebuild writes a new index from the slots (refusing an index an
// open store holds); Inspect reads a closed volume's figures without
// recovering or writing anything (nvrd store stats).
//
// # Concurrency
//
// A Store is safe for concurrent use. One goroutine (the writer) owns all
// writes; Append only touches in-memory buffers and never waits for I/O.
// A FrameReader is for one goroutine. Close stops the writer after a final
// commit and is idempotent.
package ringstore
