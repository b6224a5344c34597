package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"

	"github.com/nvrfw/nvr/firmware/cluster"
	"github.com/nvrfw/nvr/firmware/cluster/heartbeat"
	"github.com/nvrfw/nvr/firmware/cluster/nfdelay"
	"github.com/nvrfw/nvr/firmware/cluster/pairing"
	"github.com/nvrfw/nvr/firmware/cluster/vip"
)

// The rig's processes are this test binary re-executed inside a namespace
// with NVR_RIG_HELPER naming the part to play and NVR_RIG_ARGS its JSON
// arguments: "node" (a data node with a role-following stub recorder and
// the VIP), "witness", "arpwatch" (the client probing the VIP) and
// "nfdelay".
const (
	helperEnv = "NVR_RIG_HELPER"
	argsEnv   = "NVR_RIG_ARGS"
)

type helperArgs struct {
	ID        string           `json:"id"`
	Peers     string           `json:"peers"`
	Dir       string           `json:"dir"`
	ConfigDir string           `json:"config_dir"`
	VIP       string           `json:"vip"`
	Link      string           `json:"link"`
	Paths     []heartbeat.Path `json:"paths"`
	Firmware  string           `json:"firmware"`
	Delay     time.Duration    `json:"delay"`
	Jitter    time.Duration    `json:"jitter"`
	Interval  time.Duration    `json:"interval"`
	Target    string           `json:"target"`
	Epoch     uint64           `json:"epoch"`
}

// event is one line a helper prints on stdout.
type event struct {
	T      int64           `json:"t"`
	Ev     string          `json:"ev"`
	Role   string          `json:"role,omitempty"`
	Epoch  uint64          `json:"epoch,omitempty"`
	What   string          `json:"what,omitempty"`
	MAC    string          `json:"mac,omitempty"`
	MACs   []string        `json:"macs,omitempty"`
	Status *cluster.Status `json:"status,omitempty"`
	Err    string          `json:"err,omitempty"`
	// Planned marks the old primary's RoleStandby at the end of a switchover.
	Planned bool              `json:"planned,omitempty"`
	Stats   *nfdelay.Stats    `json:"stats,omitempty"`
	Extra   map[string]string `json:"extra,omitempty"`
}

func (e event) At() time.Time { return time.Unix(0, e.T) }

type emitter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (e *emitter) emit(ev event) {
	if ev.T == 0 {
		ev.T = time.Now().UnixNano()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = e.enc.Encode(ev)
}

// runHelper plays the part named in the environment and returns the exit
// code.
func runHelper(part string) int {
	var a helperArgs
	if err := json.Unmarshal([]byte(os.Getenv(argsEnv)), &a); err != nil {
		fmt.Fprintln(os.Stderr, "helper args:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	out := &emitter{enc: json.NewEncoder(os.Stdout)}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", a.ID)
	var err error
	switch part {
	case "node", "witness":
		err = helperNode(ctx, a, out, log)
	case "arpwatch":
		err = helperARPWatch(ctx, a, out)
	case "ndpwatch":
		err = helperNDPWatch(ctx, a, out)
	case "nfdelay":
		err = helperDelay(ctx, a, out)
	case "inject":
		err = helperInject(a, out)
	default:
		err = fmt.Errorf("unknown helper %q", part)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	return 0
}

func helperNode(ctx context.Context, a helperArgs, out *emitter, log *slog.Logger) error {
	b, err := pairing.Load(a.ConfigDir)
	if err != nil {
		return err
	}
	peers, err := cluster.ParsePeers(a.Peers)
	if err != nil {
		return err
	}
	opts := cluster.Options{ID: a.ID, Peers: peers, Dir: a.Dir, Pairing: b, Logger: log,
		Heartbeat: heartbeat.Options{Paths: a.Paths, FirmwareVersion: a.Firmware},
		OnRole: func(c cluster.RoleChange) {
			// The role-following stub: "I am primary from t1 to t2".
			out.emit(event{T: c.At.UnixNano(), Ev: "role", Role: c.Role.String(), Epoch: c.Epoch, Planned: c.Planned})
		}}
	if a.VIP != "" {
		opts.Takeover = stubTakeover{out}
	}
	var wg sync.WaitGroup
	vctx, vcancel := context.WithCancel(context.Background())
	defer func() { vcancel(); wg.Wait() }()
	if a.VIP != "" {
		ifi, err := net.InterfaceByName(a.Link)
		if err != nil {
			return err
		}
		out.emit(event{Ev: "start", MAC: ifi.HardwareAddr.String()})
		m, err := vip.New(vip.Options{Link: a.Link, Addr: netip.MustParseAddr(a.VIP)}, func(e vip.Event) {
			ev := event{T: e.At.UnixNano(), Ev: "vip", What: e.What, Epoch: e.Epoch}
			if e.Err != nil {
				ev.Err = e.Err.Error()
			}
			out.emit(ev)
		})
		if err != nil {
			return err
		}
		opts.VIP = m
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Run(vctx); err != nil {
				log.Error("vip manager", "err", err)
			}
		}()
	}
	n, err := cluster.New(opts)
	if err != nil {
		return err
	}
	// SIGUSR1 asks this node for a switchover (the console's command).
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-vctx.Done():
				return
			case <-usr1:
				sctx, cancel := context.WithTimeout(vctx, 15*time.Second)
				err := n.Switchover(sctx)
				cancel()
				ev := event{Ev: "switchover"}
				if err != nil {
					ev.Err = err.Error()
				}
				out.emit(ev)
			}
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		if err := n.WaitStarted(vctx); err != nil {
			return
		}
		for {
			select {
			case <-vctx.Done():
				return
			case <-t.C:
				st := n.Status()
				out.emit(event{Ev: "status", Status: &st})
			}
		}
	}()
	return n.Run(ctx)
}

func helperARPWatch(ctx context.Context, a helperArgs, out *emitter) error {
	ifi, err := net.InterfaceByName(a.Link)
	if err != nil {
		return err
	}
	c, err := arp.Dial(ifi)
	if err != nil {
		return err
	}
	defer c.Close()
	target := netip.MustParseAddr(a.VIP)
	out.emit(event{Ev: "start", MAC: ifi.HardwareAddr.String()})
	for ctx.Err() == nil {
		start := time.Now()
		if err := c.Request(target); err != nil {
			return err
		}
		end := start.Add(a.Interval)
		seen := map[string]bool{}
		var macs []string
		for time.Now().Before(end) {
			_ = c.SetReadDeadline(end)
			p, _, err := c.Read()
			if err != nil {
				break
			}
			if p.Operation == arp.OperationReply && p.SenderIP == target && !seen[p.SenderHardwareAddr.String()] {
				seen[p.SenderHardwareAddr.String()] = true
				macs = append(macs, p.SenderHardwareAddr.String())
			}
		}
		out.emit(event{T: start.UnixNano(), Ev: "arp", MACs: macs})
	}
	return nil
}

func helperDelay(ctx context.Context, a helperArgs, out *emitter) error {
	d, err := nfdelay.New(nfdelay.Options{Delay: a.Delay, Jitter: a.Jitter})
	if err != nil {
		return err
	}
	out.emit(event{Ev: "start"})
	err = d.Run(ctx)
	st := d.Stats()
	out.emit(event{Ev: "stats", Stats: &st})
	return err
}

// helperInject sends forged heartbeats to Target as node "primary" on path
// 1 (the LAN): one under a wrong key, one under the pair key but from an
// old epoch, and that one again (a replay).
func helperInject(a helperArgs, out *emitter) error {
	b, err := pairing.Load(a.ConfigDir)
	if err != nil {
		return err
	}
	c, err := net.Dial("udp", a.Target)
	if err != nil {
		return err
	}
	defer c.Close()
	m := heartbeat.Message{Version: heartbeat.ProtocolVersion, Path: 1, Epoch: a.Epoch, Seq: 1, SentNanos: 1, NodeID: "primary", Firmware: "1.0.0"}
	m.Restart[0] = 0xee
	wrong, _ := m.Marshal(nil, []byte("not the pair key, but 32 bytes!!"))
	m.Restart[0] = 0xef
	old, _ := m.Marshal(nil, b.PairKey)
	for _, d := range [][]byte{wrong, old, old} {
		if _, err := c.Write(d); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	out.emit(event{Ev: "injected"})
	return nil
}

// stubTakeover is the stub recorder's side of a switchover: "sessions
// started" is an event.
type stubTakeover struct{ out *emitter }

func (s stubTakeover) PrepareTakeover(context.Context) error {
	s.out.emit(event{Ev: "prepare"})
	return nil
}

func (s stubTakeover) AbortTakeover() { s.out.emit(event{Ev: "abort"}) }

// helperNDPWatch is the IPv6 client probe: a neighbour solicitation for the
// VIP every Interval; the round's answers are the target link-layer
// addresses of the advertisements for it (emitted as "arp" rounds).
func helperNDPWatch(ctx context.Context, a helperArgs, out *emitter) error {
	ifi, err := net.InterfaceByName(a.Link)
	if err != nil {
		return err
	}
	c, _, err := ndp.Listen(ifi, ndp.LinkLocal)
	if err != nil {
		return err
	}
	defer c.Close()
	target := netip.MustParseAddr(a.VIP)
	snm, err := ndp.SolicitedNodeMulticast(target)
	if err != nil {
		return err
	}
	ns := &ndp.NeighborSolicitation{TargetAddress: target,
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: ifi.HardwareAddr}}}
	out.emit(event{Ev: "start", MAC: ifi.HardwareAddr.String()})
	for ctx.Err() == nil {
		start := time.Now()
		if err := c.WriteTo(ns, nil, snm); err != nil {
			return err
		}
		end := start.Add(a.Interval)
		seen := map[string]bool{}
		var macs []string
		for time.Now().Before(end) {
			_ = c.SetReadDeadline(end)
			msg, _, _, err := c.ReadFrom()
			if err != nil {
				break
			}
			na, ok := msg.(*ndp.NeighborAdvertisement)
			if !ok || na.TargetAddress != target {
				continue
			}
			for _, o := range na.Options {
				if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target && !seen[lla.Addr.String()] {
					seen[lla.Addr.String()] = true
					macs = append(macs, lla.Addr.String())
				}
			}
		}
		out.emit(event{T: start.UnixNano(), Ev: "arp", MACs: macs})
	}
	return nil
}
