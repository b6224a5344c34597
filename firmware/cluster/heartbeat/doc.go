// Package heartbeat owns the pair's heartbeats: UDP datagrams sent between
// the two data nodes on every configured path (the dedicated link and the
// LAN), authenticated with HMAC-SHA256 under the pair key.
//
// Heartbeats feed status only: per-path liveness, round-trip time and loss,
// the peer's firmware/protocol version and config hash (mismatch alarms), and
// the path the mirror should use (the first path that is up, in the order
// configured: dedicated link first). They never decide roles; raft does.
//
// # Wire format (version 1, big-endian)
//
//	 0       4   5   6       8               16                    32
//	+-------+---+---+-------+---------------+---------------------+
//	| "NVHB"|ver|pth| flags |     epoch     |  restart identity   |
//	+-------+---+---+-------+---------------+---------------------+
//	|  seq (u64)  | sent ns (i64) | echo seq | echo sent | echo hold |
//	+-------------+---------------+----------+-----------+-----------+
//	| config hash (32) | idlen u8 | id | fwlen u8 | firmware version |
//	+------------------+----------+----+----------+-----------------+
//	| HMAC-SHA256 of everything before (32)                          |
//	+---------------------------------------------------------------+
//
// Versions evolve by appending fields before the MAC: a receiver ignores
// bytes after the firmware version when the datagram's version is newer than
// its own, so firmware N and N-1 interoperate during a rolling upgrade (the
// difference shows as a version-mismatch alarm).
//
// "sent ns" is the sender's monotonic clock; the receiver echoes it with the
// time it held it, so the sender measures RTT without synchronised clocks.
// The path byte is covered by the MAC and must match the socket it arrived
// on, so a datagram captured on one path cannot be replayed on the other.
//
// # Refusals
//
// A datagram is refused, counted, and logged with its reason (rate limited
// per reason) when: it does not parse; its MAC is wrong (wrong key or
// tampered); it names this node; its restart identity is one the sender has
// already replaced; its sequence number was already accepted (replay) or is
// older than the 256-datagram window; its epoch is lower than the highest
// epoch seen (this node's committed epoch or an accepted peer epoch).
// Reordering inside the window is accepted, so 100 ± 50 ms of jitter on a
// 100 ms interval costs nothing.
//
// # Concurrency
//
// Service.Run owns one reader goroutine per path and the sender loop, all
// joined before Run returns. Status may be called from any goroutine.
package heartbeat
