// Package appliance is the long-lived program the image starts (`nvrd run`):
// it loads the configuration, opens the store, and owns the lifecycle of every
// component (camera recording, console, API, watchdog, board monitor) through
// a Supervisor, so that one failing component is logged and restarted with
// backoff and never takes recording of the others down. On shutdown it stops
// components, makes the last commit durable and closes the store.
//
// # A node of a pair
//
// With Options.Cluster (nvrd run --cluster-dir ...), the recording scope
// also runs the pair's parts (cluster.go) as one supervised component: the
// raft node (package cluster), the VIP, and the mirror (package
// ringstore/mirror). The store is open on both nodes; camera sessions run
// only while this node is the primary (desiredCameras is empty on the
// standby, which stays healthy: the watchdog is petted and a firmware trial
// is confirmed without recording). The primary runs a mirror Sender to the
// standby over the path cluster.Node.MirrorPath picks; the standby runs a
// Receiver (a new one per standby term, fenced with the node's CheckEpoch)
// that takes footage only while this node is the standby. A node standing
// down stops its sessions, drops their late frames and commits before its
// receiver starts. A planned switchover is make-before-break without a
// hole (cluster_handover.go): the new primary's sessions start while the
// mirror still appends, hold their frames, and continue after the mirror's
// newest frame, found by content. Recordings and exports read each camera
// merged with its backfill streams (ringstore.MergedSpans/MergedFrames),
// which never show as streams of their own. The console (show cluster,
// cluster switchover), the API (/api/v1/cluster) and metrics (nvr_cluster_*,
// nvr_mirror_*) show the pair; version, config and peer alarms are raised
// from the heartbeats.
//
// Concurrency: the Supervisor runs each component in its own goroutine bound
// to the Run context; all goroutines are joined before Run returns.
package appliance
