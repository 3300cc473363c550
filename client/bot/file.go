package bot

import (
	"context"
	"errors"

	"github.com/parley/parley/client"
)

// sendArgs are the arguments of send: File to Peer, or to Group (as for
// chat), one of the two.
type sendArgs struct {
	Peer  string `json:"peer"`
	Group string `json:"group"`
	File  string `json:"file"`
}

// send sends a file end to end (docs/files.md); its result comes once
// every chunk is where the recipients can fetch it and the offer went.
// Progress comes meanwhile as file-progress events.
func (b *Bot) send(ctx context.Context, a sendArgs) (Result, error) {
	to, group := a.Peer, false
	switch {
	case a.Peer == "" && a.Group == "":
		return nil, errors.New("missing peer or group")
	case a.Peer != "" && a.Group != "":
		return nil, errors.New("peer and group: give one of them")
	case a.Group != "":
		to, group = a.Group, true
	}
	if a.File == "-" {
		return nil, errors.New("file: - is stdin, which carries the commands")
	}
	res, err := b.s.SendFile(ctx, to, a.File, client.SendFileConfig{Group: group})
	if err != nil {
		return nil, err
	}
	r := Result{"file": res.ID, "file_name": res.Name, "file_size": res.Size, "file_hash": res.Hash, "recipients": res.Recipients, "stored": res.Stored, "file_route": res.Route}
	if group {
		r["group"] = res.Group
	} else {
		r["peer"] = a.Peer
	}
	return r, nil
}
