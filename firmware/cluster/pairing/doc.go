// Package pairing owns the appliance pair's keys: a small certificate
// authority made on the console at pairing, one ECDSA P-256 certificate per
// node (primary, standby, witness) and the pair's shared heartbeat key, and
// the mutual TLS 1.3 configurations built from them for raft, the cluster
// control calls and the mirror.
//
// A pairing is exported as one PEM bundle per node (CA certificate, the
// node's certificate and key, the heartbeat key); the node imports its bundle
// into its config volume (Save), and loads it at start (Load). The CA key
// never leaves the node that ran the pairing (it is not in any bundle), so a
// new node means a new pairing.
//
// Every certificate is valid for client and server authentication and names
// the node ID as its common name and as a DNS name; peers verify the chain to
// the pair's CA, so any node of the pair is accepted and nothing else is.
// Functions here are pure apart from Save and Load; there is no shared state.
package pairing
