package appliance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/nvrfw/nvr/firmware/cluster"
	"github.com/nvrfw/nvr/firmware/cluster/heartbeat"
	"github.com/nvrfw/nvr/firmware/cluster/pairing"
	"github.com/nvrfw/nvr/firmware/cluster/vip"
	"github.com/nvrfw/nvr/firmware/events"
	"github.com/nvrfw/nvr/ringstore/mirror"
)

// ClusterOptions makes the appliance one data node of a pair (see package
// cluster): camera sessions run only while it is the primary, the primary
// mirrors its store to the standby, and the standby takes over.
type ClusterOptions struct {
	// ID is this node's ID (as in its pairing bundle); required.
	ID string
	// Peers are the three voters, this node included; required.
	Peers []cluster.Peer
	// Bind is the raft/control listen address; default this node's Peers
	// address.
	Bind string
	// Dir holds raft's state and the mirror state; required.
	Dir string
	// Pairing holds the pair's keys; required.
	Pairing *pairing.Bundle
	// Heartbeat lists the heartbeat paths, dedicated link first; the
	// mirror ships over the first one that is up (to MirrorPort on the
	// peer's host of that path). Required: without heartbeats there is no
	// mirror path.
	Heartbeat []heartbeat.Path
	// VIP is the service address the primary holds; the zero value means
	// none.
	VIP netip.Addr
	// VIPLink is the LAN interface the VIP is answered on; required with VIP.
	VIPLink string
	// MirrorBind is where this node's mirror receiver listens while it is
	// the standby; default ":7445" (mirror.DefaultPort).
	MirrorBind string
	// MirrorPort is the port of the peer's receiver; default MirrorBind's.
	MirrorPort int
	// Timing is raft's timing; the zero value means cluster's defaults.
	Timing cluster.Timing
	// PrepareWait bounds how long a planned switchover waits for this
	// node's cameras to commit frames before leadership moves; default 10 s.
	PrepareWait time.Duration
}

func (o *ClusterOptions) validate() error {
	if o.ID == "" || o.Dir == "" || o.Pairing == nil || len(o.Peers) != 3 {
		return errors.New("cluster mode: ID, Dir, Pairing and three Peers are required")
	}
	if len(o.Heartbeat) == 0 {
		return errors.New("cluster mode: at least one heartbeat path is required (the mirror ships over it)")
	}
	if o.VIP.IsValid() && o.VIPLink == "" {
		return errors.New("cluster mode: a VIP needs its LAN interface (VIPLink)")
	}
	if o.MirrorBind == "" {
		o.MirrorBind = ":" + strconv.Itoa(mirror.DefaultPort)
	}
	if o.MirrorPort == 0 {
		_, p, err := net.SplitHostPort(o.MirrorBind)
		if err != nil {
			return fmt.Errorf("cluster mode: mirror bind %q: %w", o.MirrorBind, err)
		}
		if o.MirrorPort, err = strconv.Atoi(p); err != nil || o.MirrorPort == 0 {
			return fmt.Errorf("cluster mode: mirror bind %q needs a port", o.MirrorBind)
		}
	}
	if o.PrepareWait <= 0 {
		o.PrepareWait = 10 * time.Second
	}
	return nil
}

// clusterState is the pair's view kept across recording scopes (the node
// itself lives in one scope: it is restarted with the store).
type clusterState struct {
	mu        sync.Mutex
	node      *cluster.Node // nil while (re)starting
	scope     *clusterScope // nil while (re)starting
	takeovers uint64        // times this node became primary
	mirrorSt  *mirror.State // shared by sender and receivers across scopes
	hash      [32]byte      // pairConfigHash's, computed at hashAt
	hashAt    time.Time
}

// clusterScope runs the pair's parts over one open store: the raft node,
// the VIP, the mirror sender (while primary) and receiver (while standby).
type clusterScope struct {
	a      *App
	rec    *recording
	opts   ClusterOptions
	log    *slog.Logger
	node   *cluster.Node
	sender *mirror.Sender
	vipRun *vip.Manager  // nil without a VIP
	mst    *mirror.State // the node's mirror state (sender and receivers)

	mu        sync.Mutex
	role      cluster.Role
	epoch     uint64
	preparing bool
	receiver  *mirror.Receiver
	term      context.CancelFunc // the running sender's or receiver's
	termDone  chan struct{}
	ctx       context.Context
}

// inCluster reports whether the appliance is a node of a pair.
func (a *App) inCluster() bool { return a.opts.Cluster != nil }

// recordsNow reports whether camera sessions should run: always outside a
// pair; in a pair only on the primary (or while it prepares a takeover).
func (a *App) recordsNow() bool {
	if !a.inCluster() {
		return true
	}
	a.cl.mu.Lock()
	sc := a.cl.scope
	a.cl.mu.Unlock()
	if sc == nil {
		return false
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.role == cluster.RolePrimary || sc.preparing
}

// clusterComponent is the recording scope's component running the pair's
// parts. A restart makes a fresh node (raft reopens its state).
func (a *App) clusterComponent(rec *recording) Component {
	return Component{Name: "cluster", Run: func(ctx context.Context) error {
		sc, err := a.newClusterScope(rec)
		if err != nil {
			return err
		}
		return sc.run(ctx)
	}}
}

func (a *App) newClusterScope(rec *recording) (*clusterScope, error) {
	o := *a.opts.Cluster
	log := a.log.With("component", "cluster")
	a.cl.mu.Lock()
	if a.cl.mirrorSt == nil {
		st, err := mirror.OpenState(filepath.Join(o.Dir, "mirror-state.json"))
		if err != nil {
			a.cl.mu.Unlock()
			return nil, err
		}
		a.cl.mirrorSt = st
	}
	mst := a.cl.mirrorSt
	a.cl.mu.Unlock()
	sc := &clusterScope{a: a, rec: rec, opts: o, log: log, mst: mst}
	nopts := cluster.Options{ID: o.ID, Bind: o.Bind, Peers: o.Peers, Dir: filepath.Join(o.Dir, "raft"), Pairing: o.Pairing,
		Timing: o.Timing, OnRole: sc.onRole, Takeover: sc, Logger: log,
		Heartbeat: heartbeat.Options{Paths: o.Heartbeat, FirmwareVersion: a.opts.Version, ConfigHash: a.pairConfigHash}}
	var vm *vip.Manager
	if o.VIP.IsValid() {
		var err error
		vm, err = vip.New(vip.Options{Link: o.VIPLink, Addr: o.VIP}, func(e vip.Event) {
			if e.What == "answer" || e.What == "announce" {
				return
			}
			log.Info("vip: "+e.What, "addr", o.VIP, "epoch", e.Epoch, "err", e.Err)
		})
		if err != nil {
			return nil, fmt.Errorf("cluster: VIP: %w", err)
		}
		nopts.VIP = vm
	}
	n, err := cluster.New(nopts)
	if err != nil {
		return nil, err
	}
	sc.node = n
	rec.handover.setGate(n.LeaseFresh)
	path := func() (string, bool) {
		p, ok := n.MirrorPath()
		return p.Peer, ok
	}
	sc.sender, err = mirror.NewSender(mirror.SenderOptions{Store: rec.store, NodeID: o.ID, TLS: o.Pairing.ClientConfig(),
		Addr: mirror.PeerAddr(path, o.MirrorPort), Epoch: sc.senderEpoch, State: mst, Logger: log.With("part", "mirror-sender")})
	if err != nil {
		return nil, err
	}
	sc.vipRun = vm
	return sc, nil
}

// run runs the node (and the VIP manager) until ctx ends, then stops the
// mirror and the cameras' role.
func (sc *clusterScope) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sc.ctx = ctx
	a := sc.a
	a.cl.mu.Lock()
	a.cl.node, a.cl.scope = sc.node, sc
	a.cl.mu.Unlock()
	defer func() {
		a.cl.mu.Lock()
		a.cl.node, a.cl.scope = nil, nil
		a.cl.mu.Unlock()
		sc.stopTerm()
		if err := sc.rec.recorder.Set(nil); err != nil {
			sc.log.Warn("stop camera sessions", "err", err)
		}
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	if sc.vipRun != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sc.vipRun.Run(ctx); err != nil {
				sc.log.Error("vip manager stopped", "err", err)
			}
		}()
	}
	wg.Add(1)
	go func() { defer wg.Done(); sc.watch(ctx) }()
	// Until raft says otherwise this node is the standby: take footage.
	sc.mu.Lock()
	sc.startReceiverLocked()
	sc.mu.Unlock()
	err := sc.node.Run(ctx)
	cancel()
	return err
}

// senderEpoch is the epoch the sender stamps: this node's, while primary.
func (sc *clusterScope) senderEpoch() uint64 {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.role != cluster.RolePrimary {
		return 0
	}
	return sc.epoch
}

// standby reports whether the receiver may take footage now.
func (sc *clusterScope) standby() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.role == cluster.RoleStandby
}

// onRole follows the node's role: cameras and the sender on the primary,
// the receiver on the standby.
func (sc *clusterScope) onRole(c cluster.RoleChange) {
	a := sc.a
	sc.mu.Lock()
	prev, receiving := sc.role, sc.receiver != nil
	sc.role, sc.epoch, sc.preparing = c.Role, c.Epoch, false
	sc.mu.Unlock()
	sc.log.Info("cluster role", "role", c.Role, "epoch", c.Epoch, "planned", c.Planned)
	switch c.Role {
	case cluster.RolePrimary:
		a.cl.mu.Lock()
		a.cl.takeovers++
		a.cl.mu.Unlock()
		// The receiver refuses batches from now on; once it has stopped,
		// the sessions a switchover started replay their held frames after
		// the mirror's newest.
		sc.stopTerm()
		sc.rec.handover.release()
		sc.applyCameras()
		sc.mu.Lock()
		sc.startSenderLocked()
		sc.mu.Unlock()
		a.hub.Publish(events.Event{Kind: "cluster.primary", Source: sc.opts.ID,
			Message: fmt.Sprintf("this node is the primary (epoch %d): recording and mirroring to the standby", c.Epoch)})
	case cluster.RoleStandby:
		if prev == cluster.RoleStandby && receiving {
			return // already taking footage
		}
		sc.stopTerm()
		sc.stopRecording()
		sc.mu.Lock()
		sc.startReceiverLocked()
		sc.mu.Unlock()
		if prev == cluster.RolePrimary {
			a.hub.Publish(events.Event{Kind: "cluster.standby", Severity: events.Warning, Source: sc.opts.ID,
				Message: fmt.Sprintf("this node is the standby now (epoch %d, planned %v): camera sessions stopped", c.Epoch, c.Planned)})
		}
	}
}

// stopRecording stops the camera sessions at once and makes what they
// wrote durable and indexed, so that the receiver (next) sees this node's
// own newest frames: the new primary's footage of the same window goes to
// backfill streams instead of being refused as going back in time.
func (sc *clusterScope) stopRecording() {
	if err := sc.rec.recorder.Set(nil); err != nil {
		sc.log.Warn("stop camera sessions", "err", err)
	}
	sc.rec.handover.silence()
	ctx, cancel := context.WithTimeout(sc.ctx, 5*time.Second)
	defer cancel()
	if err := sc.rec.store.Flush(ctx); err != nil && sc.ctx.Err() == nil {
		sc.log.Warn("commit this node's last frames before taking the mirror", "err", err)
	}
}

// applyCameras sets the recorder's cameras for the current role.
func (sc *clusterScope) applyCameras() {
	cams, err := sc.a.desiredCameras()
	if err == nil {
		err = sc.rec.recorder.Set(cams)
	}
	if err != nil {
		sc.log.Error("start camera sessions", "err", err)
	}
}

// stopTerm stops the running sender or receiver and waits for it.
func (sc *clusterScope) stopTerm() {
	sc.mu.Lock()
	cancel, done := sc.term, sc.termDone
	sc.term, sc.termDone, sc.receiver = nil, nil, nil
	sc.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

func (sc *clusterScope) startSenderLocked() {
	if sc.term != nil || sc.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(sc.ctx)
	done := make(chan struct{})
	sc.term, sc.termDone = cancel, done
	go func() {
		defer close(done)
		sc.sender.Run(ctx)
	}()
}

// startReceiverLocked listens for the primary's sender; a new Receiver per
// standby term (its replica learns the store's newest frames afresh, after
// this node recorded itself).
func (sc *clusterScope) startReceiverLocked() {
	if sc.term != nil || sc.ctx.Err() != nil {
		return
	}
	r, err := mirror.NewReceiver(mirror.ReceiverOptions{Store: sc.rec.store, NodeID: sc.opts.ID, TLS: sc.opts.Pairing.ServerConfig(),
		State: sc.mst, Fence: sc.node, Standby: sc.standby, Logger: sc.log.With("part", "mirror-receiver"),
		OnRefusal: sc.refused})
	if err != nil {
		sc.log.Error("mirror receiver", "err", err)
		return
	}
	ctx, cancel := context.WithCancel(sc.ctx)
	done := make(chan struct{})
	sc.term, sc.termDone, sc.receiver = cancel, done, r
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			var lc net.ListenConfig
			ln, err := lc.Listen(ctx, "tcp", sc.opts.MirrorBind)
			if err == nil {
				err = r.Serve(ctx, ln)
			}
			if err != nil && ctx.Err() == nil {
				sc.log.Warn("mirror receiver: listen failed; retrying", "bind", sc.opts.MirrorBind, "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}
	}()
}

// refused raises an alarm for a refused mirror connection or message.
func (sc *clusterScope) refused(code uint8, err error) {
	sc.a.hub.Publish(events.Event{Kind: "cluster.mirror_refused", Severity: events.Warning, Source: sc.opts.ID,
		Message: fmt.Sprintf("mirror: refused (code %d): %v", code, err)})
}

// PrepareTakeover implements cluster.Takeover: start every camera session
// with its writes held (the receiver still takes the primary's footage
// into the same streams) and return once each enabled camera has frames
// that overlap what the mirror delivered, so that on becoming primary the
// held footage continues the mirrored one without a gap (see
// cluster_handover.go). A camera that is offline does not block the
// switchover beyond PrepareWait.
func (sc *clusterScope) PrepareTakeover(ctx context.Context) error {
	sc.mu.Lock()
	sc.preparing = true
	sc.mu.Unlock()
	hs := sc.rec.handover
	hs.hold()
	start := time.Now()
	sc.applyCameras()
	want, err := sc.a.desiredCameras()
	if err != nil {
		return err
	}
	peer := ""
	for _, p := range sc.opts.Peers {
		if p.ID != sc.opts.ID && !p.Witness {
			peer = p.ID
		}
	}
	ctx, cancel := context.WithTimeout(ctx, sc.opts.PrepareWait)
	defer cancel()
	for {
		missing := ""
		received := sc.mst.Received(peer)
		for _, c := range want {
			first, ok := hs.firstHeld(c.Name)
			if !ok || received[c.Name].Before(first) {
				missing = c.Name
				break
			}
		}
		if missing == "" {
			break
		}
		select {
		case <-ctx.Done():
			sc.log.Warn("switchover: not every camera overlaps the mirrored footage yet; going on", "camera", missing)
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
	sc.log.Info("switchover: every camera records here, overlapping the mirrored footage", "cameras", len(want), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// AbortTakeover implements cluster.Takeover.
func (sc *clusterScope) AbortTakeover() {
	sc.mu.Lock()
	sc.preparing = false
	standby := sc.role == cluster.RoleStandby
	sc.mu.Unlock()
	sc.rec.handover.abort()
	if standby {
		if err := sc.rec.recorder.Set(nil); err != nil {
			sc.log.Warn("stop camera sessions", "err", err)
		}
	}
}

// mirrorStatus is the running sender's or receiver's figures.
func (sc *clusterScope) mirrorStatus() (mirror.Status, string) {
	sc.mu.Lock()
	role, r := sc.role, sc.receiver
	sc.mu.Unlock()
	if role == cluster.RolePrimary {
		return sc.sender.Status(), "sender"
	}
	if r != nil {
		return r.Status(), "receiver"
	}
	return mirror.Status{}, ""
}

// watch raises and clears the pair's alarms (version and config mismatch,
// peer unreachable) once a second.
func (sc *clusterScope) watch(ctx context.Context) {
	if sc.node.WaitStarted(ctx) != nil {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	start := time.Now()
	var version, config, peerDown bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := sc.node.Status()
		sc.commitConfig(st)
		if st.Heartbeat == nil {
			continue
		}
		h := *st.Heartbeat
		down := h.Preferred == "" && time.Since(start) > 5*time.Second // not before the peer had a chance
		version = sc.alarm(version, h.VersionMismatch, "cluster.version_mismatch",
			fmt.Sprintf("peer %s runs firmware %s (protocol %d), this node %s: expected only during an upgrade", h.PeerID, h.PeerFirmware, h.PeerProtocolVersion, sc.a.opts.Version))
		config = sc.alarm(config, h.ConfigMismatch, "cluster.config_mismatch", "the peer's configuration differs from this node's")
		peerDown = sc.alarm(peerDown, down, "cluster.peer_unreachable", "no heartbeat from the peer on any path")
	}
}

// commitConfig has the primary commit its configuration hash through raft
// under its epoch when it differs from the committed one (refused by the
// FSM after a newer epoch): show cluster and the API give the pair's
// committed configuration, and a deposed primary cannot change it.
func (sc *clusterScope) commitConfig(st cluster.Status) {
	if r, _ := sc.node.Role(); r != cluster.RolePrimary {
		return
	}
	h := sc.a.pairConfigHash()
	hash := hex.EncodeToString(h[:8])
	if st.ConfigHash == hash {
		return
	}
	if err := sc.node.ProposeConfig(hash); err != nil {
		sc.log.Warn("commit the configuration hash", "hash", hash, "err", err)
		return
	}
	sc.log.Info("configuration hash committed", "hash", hash, "epoch", st.Epoch)
}

// alarm raises (on) or clears the alarm key when it changes from was.
func (sc *clusterScope) alarm(was, on bool, key, msg string) bool {
	if was == on {
		return on
	}
	ev := events.Event{Kind: key, Source: sc.opts.ID}
	if on {
		ev.Severity, ev.Alarm, ev.Message = events.Warning, key, msg
	} else {
		ev.ClearAlarm, ev.Message = key, "cleared: "+key
	}
	sc.a.hub.Publish(ev)
	return on
}

// pairConfigHash hashes what both nodes of a pair must agree on to stand in
// for each other: the cameras they record (names, URLs with credentials,
// transports) and their retention. Sent in heartbeats; a difference raises
// the config-mismatch alarm.
func (a *App) pairConfigHash() [32]byte {
	a.cl.mu.Lock()
	defer a.cl.mu.Unlock()
	if now := time.Now(); now.Sub(a.cl.hashAt) >= time.Second { // heartbeats ask 20 times a second
		a.cl.hash, a.cl.hashAt = a.computeConfigHash(), now
	}
	return a.cl.hash
}

func (a *App) computeConfigHash() [32]byte {
	cams, err := a.configuredCameras()
	if err != nil {
		return [32]byte{}
	}
	sort.Slice(cams, func(i, j int) bool { return cams[i].Name < cams[j].Name })
	h := sha256.New()
	for _, c := range cams {
		fmt.Fprintf(h, "camera %q %q %q\n", c.Name, c.URL, c.Transport)
	}
	if a.cfg != nil {
		if site, err := a.cfg.Site(); err == nil {
			fmt.Fprintf(h, "default max age %v\n", site.Storage.DefaultMaxAge)
			for _, c := range site.Cameras {
				fmt.Fprintf(h, "max age %q %v\n", c.Name, c.MaxAge)
			}
		}
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// ClusterView is the pair's state as the console and the API show it.
type ClusterView struct {
	cluster.Status
	Takeovers uint64        `json:"takeovers"`
	Mirror    mirror.Status `json:"mirror"`
	MirrorAs  string        `json:"mirror_role"`
	Firmware  string        `json:"firmware"`
}

var errNoCluster = errors.New("the pair's node is (re)starting; try again in a few seconds")

// clusterView returns the pair's view, or an error when the node is not
// running now.
func (a *App) clusterView() (ClusterView, error) {
	a.cl.mu.Lock()
	sc, takeovers := a.cl.scope, a.cl.takeovers
	a.cl.mu.Unlock()
	if sc == nil {
		return ClusterView{}, errNoCluster
	}
	v := ClusterView{Status: sc.node.Status(), Takeovers: takeovers, Firmware: a.opts.Version}
	v.Mirror, v.MirrorAs = sc.mirrorStatus()
	return v, nil
}

// switchover asks the pair for a planned role swap (make-before-break).
func (a *App) switchover(ctx context.Context) error {
	a.cl.mu.Lock()
	sc := a.cl.scope
	a.cl.mu.Unlock()
	if sc == nil {
		return errNoCluster
	}
	return sc.node.Switchover(ctx)
}
