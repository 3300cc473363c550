package main

import (
	"flag"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/promote"
	"github.com/parley/parley/internal/cli"
)

// promoteFlags are the self-promotion flags of the long-running clients
// (listen, echo).
type promoteFlags struct {
	no           bool
	after, check time.Duration
	listen, turn string
	allow        cli.CIDRs
}

func (p *promoteFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&p.no, "no-supernode", false, "never promote this client to a supernode")
	fs.DurationVar(&p.after, "promote-after", 10*time.Minute, "become a supernode after this long online, if dial-backs show a public address")
	fs.DurationVar(&p.check, "promote-check", time.Minute, "how often to ask for a dial-back (before promoting, and to keep qualifying)")
	fs.StringVar(&p.listen, "supernode-listen", ":8081", "the supernode `ADDR` once promoted")
	fs.StringVar(&p.turn, "turn", ":3478", "the relay's UDP and TCP `ADDR` once promoted")
	fs.Var(&p.allow, "relay-allow-peer", "`CIDR` the relay may relay to although private or special (labs only; repeatable)")
}

// start begins self-promotion on s unless --no-supernode.
func (p *promoteFlags) start(s *client.Session) error {
	if p.no {
		return nil
	}
	return promote.Start(s, promote.Config{
		After: p.after, CheckInterval: p.check, Listen: p.listen, TURN: p.turn, AllowPeers: p.allow,
	})
}
