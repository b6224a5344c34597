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
// The store never creates, grows or deletes a file after format.
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
// Kinds: frames (a frame table: track, time delta, DTS offset, key flag, size;
// then the track table with codec parameter sets when the record starts with a
// keyframe or parameters changed; then the payloads), open (written and synced
// each time the store opens: marks a store restart, and claims the slot for the
// new generation), gap (a discontinuity with its cause), pad.
//
// # Generations
//
// Every time a slot is (re)started, either because the ring moved into it or
// because the store reopened and continues appending in it, the index hands out
// a new generation, strictly greater than any before. Within one slot the valid
// prefix has non-decreasing generations, all >= the slot's base generation, so
// stale bytes of an older use of the slot, or of a torn batch before the last
// reopen, can never be mistaken for records. (Gen, Offset) orders the whole log.
//
// # Write path
//
// Append copies frames into per-stream pending buffers (bounded: beyond the
// bound it returns ErrBackpressure). Once per commit tick the writer encodes the
// pending frames as records into one buffer, writes it at the head with large
// writes, calls Datasync once per slot touched, and only then advances the
// durable watermark (acknowledgement), then commits the tick's index entries in
// one bbolt transaction. A failed write or Datasync seals the slot as suspect,
// raises an alarm, and re-writes the same batch into the next slot; it is never
// acknowledged from the failed slot.
//
// # Recycling (eviction)
//
// Before the first byte of a recycled slot is written: (1) in memory the slot's
// base generation is raised, so readers holding old locations detect the reuse;
// (2) one index transaction drops every entry of the slot's old contents and
// makes it the head with the new generation; (3) the new records are written.
//
// # Recovery
//
// Open checks identities, then scans only the head slot from the index's
// checkpoint (the end of the last indexed batch), stopping at the first record
// that is torn, stale or of a lower generation; it indexes what it found, takes
// a new generation, writes and syncs an open record at the end of the valid
// prefix, and resumes appending there. The index can always be rebuilt from the
// slot files alone (Rebuild), and after every recovery it equals that rebuild.
//
// # Concurrency
//
// A Store is safe for concurrent use. One goroutine (the writer) owns all
// writes; Append only touches in-memory buffers and never waits for I/O.
// Readers check a record's generation against the slot's current base
// generation before and after reading it, so recycled bytes are never returned.
package ringstore
