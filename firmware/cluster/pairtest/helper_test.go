package pairtest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/arp"

	"github.com/nvrfw/nvr/firmware/api"
	"github.com/nvrfw/nvr/firmware/cluster/nfdelay"
)

// vmsArgs configures the VMS helper (client namespace).
type vmsArgs struct {
	Targets     map[string]string // name -> API base URL
	Token       string
	Interval    time.Duration
	VIP, Link   string
	ARPInterval time.Duration
}

// poll is one line of the VMS helper: an API poll of a target, or an ARP
// round (Target "arp").
type poll struct {
	T      int64  `json:"t"`
	Target string `json:"target"`
	Err    string `json:"err,omitempty"`
	// From /api/v1/cluster.
	Node            string  `json:"node,omitempty"`
	Role            string  `json:"role,omitempty"`
	Epoch           uint64  `json:"epoch,omitempty"`
	Lease           bool    `json:"lease,omitempty"`
	VersionMismatch bool    `json:"version_mismatch,omitempty"`
	ConfigMismatch  bool    `json:"config_mismatch,omitempty"`
	ConfigHash      string  `json:"config_hash,omitempty"`
	PeerFirmware    string  `json:"peer_firmware,omitempty"`
	Connected       bool    `json:"connected,omitempty"`
	Batches         uint64  `json:"batches,omitempty"`
	Lag             float64 `json:"lag,omitempty"`
	Path            string  `json:"path,omitempty"`
	DedicatedLoss   float64 `json:"ded_loss,omitempty"`
	// From /api/v1/status.
	Version   string `json:"version,omitempty"`
	Recording int    `json:"recording,omitempty"`
	Healthy   bool   `json:"healthy,omitempty"`
	// Alarms are the active alarms' messages.
	Alarms []string `json:"alarms,omitempty"`
	// ARP: the MACs that answered for the VIP in this round.
	MACs []string `json:"macs,omitempty"`
}

func (s poll) At() time.Time { return time.Unix(0, s.T) }

// httpArgs is one API request of the http helper.
type httpArgs struct {
	Method, URL, Token string
	Out                string // body file; "" keeps a short body in the result
	Timeout            time.Duration
}

type httpResult struct {
	Code int    `json:"code"`
	Body string `json:"body,omitempty"`
	Err  string `json:"err,omitempty"`
}

// out serializes the helper's JSON lines.
type out struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (o *out) emit(v any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.enc.Encode(v)
}

func runHelper(kind, args string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	o := &out{enc: json.NewEncoder(os.Stdout)}
	var err error
	switch kind {
	case "vms":
		var a vmsArgs
		if err = json.Unmarshal([]byte(args), &a); err == nil {
			err = helperVMS(ctx, a, o)
		}
	case "nfdelay":
		var a delayArgs
		if err = json.Unmarshal([]byte(args), &a); err == nil {
			err = helperDelay(ctx, a, o)
		}
	case "http":
		var a httpArgs
		if err = json.Unmarshal([]byte(args), &a); err == nil {
			o.emit(helperHTTP(ctx, a))
		}
	default:
		err = fmt.Errorf("unknown helper %q", kind)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	return 0
}

func insecureClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, // the nodes' self-made API certificates
		MaxIdleConnsPerHost: 2,
	}}
}

func getJSON(ctx context.Context, c *http.Client, url, token string, v any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %d %s", url, resp.StatusCode, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// helperVMS polls every target's cluster and status endpoints, and probes
// the VIP by ARP, until ctx ends.
func helperVMS(ctx context.Context, a vmsArgs, o *out) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for name, base := range a.Targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := insecureClient(700 * time.Millisecond)
			t := time.NewTicker(a.Interval)
			defer t.Stop()
			for ctx.Err() == nil {
				s := poll{T: time.Now().UnixNano(), Target: name}
				var cs api.ClusterStatus
				var st api.Status
				err := getJSON(ctx, c, base+"/api/v1/cluster", a.Token, &cs)
				if err == nil {
					err = getJSON(ctx, c, base+"/api/v1/status", a.Token, &st)
				}
				if err != nil {
					s.Err = err.Error()
					c.CloseIdleConnections()
				} else {
					s.Node, s.Role, s.Epoch, s.Lease, s.ConfigHash = cs.Node, cs.Role, cs.Epoch, cs.LeaseFresh, cs.ConfigHash
					s.VersionMismatch, s.ConfigMismatch, s.PeerFirmware = cs.VersionMismatch, cs.ConfigMismatch, cs.PeerFirmware
					s.Connected, s.Batches, s.Lag, s.Path = cs.Mirror.Connected, cs.Mirror.Batches, cs.Mirror.LagSeconds, cs.Mirror.Path
					for _, l := range cs.Links {
						if l.Name == "dedicated" {
							s.DedicatedLoss = l.Loss
						}
					}
					s.Version, s.Recording, s.Healthy = st.Version, st.Cameras.Recording, st.Healthy
					for _, al := range st.Alarms {
						s.Alarms = append(s.Alarms, al.Message)
					}
				}
				o.emit(s)
				select {
				case <-ctx.Done():
				case <-t.C:
				}
			}
		}()
	}
	ifi, err := net.InterfaceByName(a.Link)
	if err != nil {
		return err
	}
	c, err := arp.Dial(ifi)
	if err != nil {
		return err
	}
	defer c.Close()
	vip := netip.MustParseAddr(a.VIP)
	t := time.NewTicker(a.ARPInterval)
	defer t.Stop()
	for ctx.Err() == nil {
		at := time.Now()
		if err := c.Request(vip); err != nil {
			return err
		}
		macs := map[string]bool{}
		c.SetReadDeadline(time.Now().Add(a.ARPInterval * 3 / 4))
		for {
			p, _, err := c.Read()
			if err != nil {
				break
			}
			if p.Operation == arp.OperationReply && p.SenderIP == vip {
				macs[p.SenderHardwareAddr.String()] = true
			}
		}
		s := poll{T: at.UnixNano(), Target: "arp", MACs: []string{}}
		for m := range macs {
			s.MACs = append(s.MACs, m)
		}
		sort.Strings(s.MACs)
		o.emit(s)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	return nil
}

// helperHTTP performs one request.
func helperHTTP(ctx context.Context, a httpArgs) httpResult {
	c := insecureClient(a.Timeout)
	req, err := http.NewRequestWithContext(ctx, a.Method, a.URL, nil)
	if err != nil {
		return httpResult{Err: err.Error()}
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	resp, err := c.Do(req)
	if err != nil {
		return httpResult{Err: err.Error()}
	}
	defer resp.Body.Close()
	r := httpResult{Code: resp.StatusCode}
	if a.Out != "" && resp.StatusCode == 200 {
		f, err := os.Create(a.Out)
		if err != nil {
			return httpResult{Err: err.Error()}
		}
		defer f.Close()
		if _, err := io.Copy(f, resp.Body); err != nil {
			r.Err = err.Error()
		}
		return r
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	r.Body = string(b)
	return r
}

// delayArgs configures the NFQUEUE delay helper.
type delayArgs struct {
	Delay, Jitter time.Duration
}

// helperDelay delays the packets steered to NFQUEUE 0 until ctx ends, then
// reports what it did.
func helperDelay(ctx context.Context, a delayArgs, o *out) error {
	d, err := nfdelay.New(nfdelay.Options{Delay: a.Delay, Jitter: a.Jitter})
	if err != nil {
		return err
	}
	err = d.Run(ctx)
	o.emit(d.Stats())
	return err
}
