package vip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
)

// ErrStaleEpoch is returned by Claim for an epoch lower than one already
// claimed.
var ErrStaleEpoch = errors.New("vip: claim from an old epoch refused")

// Options configures a Manager.
type Options struct {
	// Link is the LAN interface the VIP is reached on; required.
	Link string
	// Addr is the VIP; required.
	Addr netip.Addr
	// Announce is how many gratuitous announcements a claim sends, 100 ms
	// apart; default 3.
	Announce int
	// Loopback is the device the address is added to; default "lo".
	Loopback string
	// ProcSys is the root of the sysctl tree; default "/proc/sys" (a seam
	// for tests).
	ProcSys string
}

// Event is something the Manager did, for logs and tests.
type Event struct {
	At   time.Time
	What string // "claim", "release", "announce", "answer", "refuse"
	// Epoch is the claim's epoch.
	Epoch uint64
	Err   error
}

// Manager holds or releases the VIP. Make it with New, run it with Run.
type Manager struct {
	opts Options
	ifi  *net.Interface

	mu      sync.Mutex
	held    bool
	epoch   uint64
	lease   func() bool
	pending int // announcements still to send
	events  func(Event)
}

// New validates opts and returns a Manager.
func New(opts Options, events func(Event)) (*Manager, error) {
	if opts.Link == "" || !opts.Addr.IsValid() {
		return nil, errors.New("vip: Link and Addr are required")
	}
	if opts.Announce <= 0 {
		opts.Announce = 3
	}
	if opts.Loopback == "" {
		opts.Loopback = "lo"
	}
	if opts.ProcSys == "" {
		opts.ProcSys = "/proc/sys"
	}
	if events == nil {
		events = func(Event) {}
	}
	return &Manager{opts: opts, events: events}, nil
}

func (m *Manager) prefix() *net.IPNet {
	bits := 32
	if m.opts.Addr.Is6() {
		bits = 128
	}
	return &net.IPNet{IP: m.opts.Addr.AsSlice(), Mask: net.CIDRMask(bits, bits)}
}

// Claim adds the VIP for epoch and announces it; it answers resolution
// while lease returns true (nil: always).
func (m *Manager) Claim(epoch uint64, lease func() bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if epoch < m.epoch {
		err := fmt.Errorf("%w: epoch %d, already claimed at %d", ErrStaleEpoch, epoch, m.epoch)
		m.events(Event{At: time.Now(), What: "refuse", Epoch: epoch, Err: err})
		return err
	}
	lo, err := netlink.LinkByName(m.opts.Loopback)
	if err != nil {
		return fmt.Errorf("vip: claim: %w", err)
	}
	if err := netlink.AddrReplace(lo, &netlink.Addr{IPNet: m.prefix()}); err != nil {
		return fmt.Errorf("vip: claim: add %s to %s: %w", m.opts.Addr, m.opts.Loopback, err)
	}
	if lease == nil {
		lease = func() bool { return true }
	}
	m.held, m.epoch, m.lease, m.pending = true, epoch, lease, m.opts.Announce
	m.events(Event{At: time.Now(), What: "claim", Epoch: epoch})
	return nil
}

// Release removes the VIP; it is idempotent.
func (m *Manager) Release() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	wasHeld := m.held
	m.held, m.pending = false, 0
	lo, err := netlink.LinkByName(m.opts.Loopback)
	if err != nil {
		return fmt.Errorf("vip: release: %w", err)
	}
	if err := netlink.AddrDel(lo, &netlink.Addr{IPNet: m.prefix()}); err != nil &&
		!errors.Is(err, syscall.EADDRNOTAVAIL) && !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("vip: release: remove %s: %w", m.opts.Addr, err)
	}
	if wasHeld {
		m.events(Event{At: time.Now(), What: "release", Epoch: m.epoch})
	}
	return nil
}

// Held reports whether this Manager holds the VIP.
func (m *Manager) Held() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.held
}

func (m *Manager) answering() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.held && m.lease()
}

// takeAnnounce reports whether an announcement is due and counts it.
func (m *Manager) takeAnnounce() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.held || m.pending <= 0 || !m.lease() {
		return false
	}
	m.pending--
	return true
}

// Run prepares the LAN interface (sysctls), then answers resolution for the
// VIP and sends claim announcements until ctx is done; it releases the VIP
// before returning.
func (m *Manager) Run(ctx context.Context) error {
	ifi, err := net.InterfaceByName(m.opts.Link)
	if err != nil {
		return fmt.Errorf("vip: %w", err)
	}
	m.ifi = ifi
	// A previous process killed while primary left the address on lo: it
	// is not ours until the cluster says so.
	if !m.Held() {
		if err := m.Release(); err != nil {
			return err
		}
	}
	defer m.Release()
	if m.opts.Addr.Is4() {
		for k, v := range map[string]string{"arp_ignore": "1", "arp_announce": "2"} {
			p := filepath.Join(m.opts.ProcSys, "net/ipv4/conf", m.opts.Link, k)
			if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
				return fmt.Errorf("vip: set %s: %w", p, err)
			}
		}
		return m.runARP(ctx)
	}
	return m.runNDP(ctx)
}

func (m *Manager) runARP(ctx context.Context) error {
	c, err := arp.Dial(m.ifi)
	if err != nil {
		return fmt.Errorf("vip: ARP on %s: %w", m.opts.Link, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	nextAnnounce := time.Now()
	for ctx.Err() == nil {
		if now := time.Now(); !now.Before(nextAnnounce) {
			nextAnnounce = now.Add(100 * time.Millisecond)
			if m.takeAnnounce() {
				p, err := arp.NewPacket(arp.OperationRequest, c.HardwareAddr(), m.opts.Addr, bcast, m.opts.Addr)
				if err == nil {
					err = c.WriteTo(p, bcast)
				}
				m.events(Event{At: time.Now(), What: "announce", Epoch: m.currentEpoch(), Err: err})
			}
		}
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		p, _, err := c.Read()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		if p.Operation != arp.OperationRequest || p.TargetIP != m.opts.Addr || p.SenderIP == m.opts.Addr ||
			string(p.SenderHardwareAddr) == string(c.HardwareAddr()) {
			continue
		}
		if m.answering() {
			_ = c.Reply(p, c.HardwareAddr(), m.opts.Addr)
		}
	}
	return nil
}

func (m *Manager) currentEpoch() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.epoch
}

func (m *Manager) runNDP(ctx context.Context) error {
	c, _, err := ndp.Listen(m.ifi, ndp.LinkLocal)
	if err != nil {
		return fmt.Errorf("vip: NDP on %s: %w", m.opts.Link, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	snm, err := ndp.SolicitedNodeMulticast(m.opts.Addr)
	if err != nil {
		return fmt.Errorf("vip: %w", err)
	}
	if err := c.JoinGroup(snm); err != nil {
		return fmt.Errorf("vip: join %s: %w", snm, err)
	}
	na := func(solicited bool) *ndp.NeighborAdvertisement {
		return &ndp.NeighborAdvertisement{Solicited: solicited, Override: true, TargetAddress: m.opts.Addr,
			Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: m.ifi.HardwareAddr}}}
	}
	nextAnnounce := time.Now()
	for ctx.Err() == nil {
		if now := time.Now(); !now.Before(nextAnnounce) {
			nextAnnounce = now.Add(100 * time.Millisecond)
			if m.takeAnnounce() {
				err := c.WriteTo(na(false), nil, netip.IPv6LinkLocalAllNodes())
				m.events(Event{At: time.Now(), What: "announce", Epoch: m.currentEpoch(), Err: err})
			}
		}
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		msg, _, from, err := c.ReadFrom()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		ns, ok := msg.(*ndp.NeighborSolicitation)
		if !ok || ns.TargetAddress != m.opts.Addr || !m.answering() {
			continue
		}
		if from.IsUnspecified() {
			// A duplicate address probe: answer to all nodes, unsolicited.
			_ = c.WriteTo(na(false), nil, netip.IPv6LinkLocalAllNodes())
			continue
		}
		_ = c.WriteTo(na(true), nil, from)
	}
	return nil
}
