// Package mirror ships every committed record of the primary's ring store
// to the standby's, so the standby already holds the footage when it takes
// over. It owns the wire protocol, the Sender (primary), the Receiver
// (standby) and the mirror State kept across restarts; the cluster code
// decides where to ship (Addr: dedicated link first, LAN fallback), under
// which epoch (Epoch, Fence) and with which keys (pairing TLS configs).
//
// # Connection
//
// The Sender dials the Receiver over mutual TLS 1.3 with the pair's
// certificates (pairing.Bundle.ClientConfig / ServerConfig); a peer without
// a certificate of the pair's CA fails the handshake and is logged.
//
//	primary (Sender)                         standby (Receiver)
//	   | --- hello {versions min..max, store format,   ---> |
//	   |           epoch, node ID, restart ID, volume ID}   |  version, store format and
//	   |                                                    |  epoch checked (Fence)
//	   | <-- hello reply {version chosen, epoch, node ID,   |
//	   |     volume ID, per stream: newest frame held,      |
//	   |     newest frame received from this sender}    --- |
//	   | --- batch {epoch, seq, [evicted], records...}  ---> |  epoch, seq > previous and
//	   | --- batch ...                                  ---> |  every record's CRC checked
//	   |                                                    |  before anything is written;
//	   | <-- ack {seq, position, newest frame}          --- |  appended, Flush, then ack
//	   | --- batch {} (keepalive, every second idle)    ---> |
//	   | <-- error {code, text} (then close)            --- |  on any refusal
//
// # Frames
//
// Every message is one frame (integers big-endian):
//
//	+-------+---------+------+------------+---------------------+
//	| "NM"  | version | type | length u32 | payload (length B)  |
//	+-------+---------+------+------------+---------------------+
//	  2 B      1 B      1 B      4 B          <= 64 MiB
//
// Types: 1 hello, 2 hello reply, 3 batch, 4 ack, 5 error. The hello frame
// carries the sender's newest version; every later frame the negotiated
// one (the lower of the two maxima), and the payload is encoded for it.
// A batch payload:
//
//	epoch u64 | seq u64 | evicted-from i64 ns (0: none) | n u32 |
//	n x { position gen u64, offset u64 | after i64 ns (0: all) | len u32 | record bytes }
//	[version >= 2: primary's newest committed frame i64 ns]
//
// Record bytes are exactly what the primary's store wrote (header to
// CRC32C, see ringstore's record layout): the CRC is verified end to end by
// the receiver (ringstore.DecodeRecord) before anything is appended.
//
// # Versions
//
// Version 1 is the base protocol; version 2 adds the optional trailing
// field of batches (the primary's newest frame, for the standby's lag
// figure). Firmware N speaks N and N-1: both sides offer a range and the
// lower maximum wins. A receiver refuses a sender whose store format is
// newer than it reads (it never takes over data it does not understand).
//
// # Resumption
//
//  1. In one Sender process, a receiver store (by volume ID) resumes from
//     the last Position it acknowledged: acks come only after the
//     receiver's store made the records durable (Store.Flush).
//  2. Otherwise (sender restarted, role change) positions of one node's
//     log mean nothing to the other's: per stream, the sender starts after
//     the newer of the time the receiver says it got from this node
//     (State, persisted on the receiver at each ack) and the time this
//     node got from the receiver (its own State, from when it was standby):
//     footage older than that came from the peer and need not go back.
//     Records are found with Store.ResumeBefore and shipped whole (their
//     CRC must stay intact) with an "after" time: the receiver applies only
//     the later frames.
//  3. A window both nodes recorded (an isolated ex-primary recording on
//     until it learned it was fenced) is kept on both: when the peer first
//     ships to a node, the node notes (State) the part of its own footage
//     newer than anything it received from the peer; when it is primary
//     again it ships that part too, from after the newest the peer got from
//     it. The receiving store keeps such older frames in backfill streams.
//  4. When the primary's ring evicted records the standby never got
//     (ringstore.ErrEvicted), the sender continues at the oldest record it
//     holds and flags the batch: the receiver marks GapEvicted on each
//     stream before its next frame.
//
// Frames arriving older than their track's newest on the standby (the
// window both nodes recorded, received after a role change) go to the
// stream's backfill stream for the sender (ringstore.BackfillName), so
// both recordings are kept; ringstore.MergedFrames and MergedSpans read
// them merged, never returning a frame twice.
//
// # Fencing
//
// The hello and every batch carry the sender's epoch; the receiver refuses
// (error message, log line, connection closed, nothing written) any epoch
// below the highest it has seen (Fence: the cluster node's CheckEpoch; or
// the State's), a batch whose sequence number does not increase, and a
// record that fails its CRC.
//
// # Lag
//
// Status: on the sender, LagBytes is the log distance from the acked
// position to the head (ringstore.Store.BytesAfter) and LagSeconds the
// newest committed frame minus the newest frame the standby acknowledged;
// on the receiver LagSeconds uses the primary's newest frame sent in
// version 2 batches.
//
// # Never slowing the recording
//
// The sender only reads committed records (ReadAfter) and holds at most
// Window bytes unacknowledged and one batch in memory; when the standby is
// slow the mirror lags. The receiver appends through ringstore.Replica.
//
// # Sizing
//
// The standby re-batches what it receives (its own commits, its own
// padding), so its volume should be at least as large as the primary's,
// with some margin, or it evicts footage the primary still holds.
//
// # Concurrency
//
// Sender.Run and Receiver.Serve own every goroutine they start (per
// connection: one reading acks or batches, one shipping or acknowledging)
// and join them before returning; cancel the context to stop them. Status
// is safe from any goroutine. A State is shared by a node's Sender and
// Receiver.
package mirror
