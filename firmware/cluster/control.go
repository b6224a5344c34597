package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/nvrfw/nvr/firmware/cluster/pairing"
)

// controlRequest is a call between nodes over the authenticated transport.
type controlRequest struct {
	// Op: "ping" (is this node alive and answering?), "transfer" (the sender, a prepared standby, asks the leader to hand
	// leadership to it) or "switchover" (the primary asks the standby to run
	// its make-before-break takeover).
	Op    string `json:"op"`
	From  string `json:"from"`
	Epoch uint64 `json:"epoch"`
}

type controlResponse struct {
	Error string `json:"error,omitempty"`
}

// call sends req to the node at addr and waits for its answer.
func (n *Node) call(ctx context.Context, addr string, req controlRequest) error {
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	c, err := n.stream.dial(addr, muxControl, min(timeout, 2*time.Second))
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return fmt.Errorf("cluster: %s call to %s: %w", req.Op, addr, err)
	}
	var resp controlResponse
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("cluster: %s call to %s: %w", req.Op, addr, err)
	}
	if resp.Error != "" {
		return fmt.Errorf("cluster: %s refused by %s: %s", req.Op, addr, resp.Error)
	}
	return nil
}

// serveControl answers one control call; it runs on the transport's
// connection goroutine, bounded by the node's context.
func (n *Node) serveControl(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	// The transport listens before raft exists; calls wait for it.
	select {
	case <-n.started:
	case <-time.After(5 * time.Second):
		_ = json.NewEncoder(c).Encode(controlResponse{Error: "node not started"})
		return
	}
	var req controlRequest
	if err := json.NewDecoder(c).Decode(&req); err != nil {
		return
	}
	if id, err := peerID(c); err == nil && id != req.From {
		n.log.Warn("cluster: control call refused: certificate names another node", "certificate", id, "claims", req.From)
		_ = json.NewEncoder(c).Encode(controlResponse{Error: "sender does not match its certificate"})
		return
	}
	var err error
	switch req.Op {
	case "ping":
	case "transfer":
		err = n.handleTransfer(req)
	case "switchover":
		ctx, cancel := context.WithTimeout(n.runCtx, 20*time.Second)
		err = n.takeover(ctx)
		cancel()
	default:
		err = fmt.Errorf("unknown op %q", req.Op)
	}
	resp := controlResponse{}
	if err != nil {
		resp.Error = err.Error()
	}
	_ = json.NewEncoder(c).Encode(resp)
}

func peerID(c net.Conn) (string, error) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return "", errors.New("not a TLS connection")
	}
	return pairing.PeerID(tc.ConnectionState())
}
