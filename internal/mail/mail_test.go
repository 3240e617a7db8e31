package mail_test

import (
	"context"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/mail"
	"github.com/bulkhead-dev/bulkhead/internal/mail/mailtest"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
)

func TestSendThroughARealSMTPServer(t *testing.T) {
	sink := mailtest.New(t)
	s, err := mail.New(mail.Config{Addr: sink.Addr, From: "bulkhead@ops.example"})
	if err != nil {
		t.Fatal(err)
	}
	runtest.Go(t, s.Run)
	if err := s.Enqueue(mail.Message{To: "ann@acme.example", Subject: "Réinitialiser", Body: "line one\nline two"}); err != nil {
		t.Fatal(err)
	}
	m := sink.Wait(t, 1)
	if m.From != "bulkhead@ops.example" || len(m.To) != 1 || m.To[0] != "ann@acme.example" || m.Subject != "Réinitialiser" ||
		!strings.Contains(m.Body, "line one\r\nline two") {
		t.Errorf("received %+v", m)
	}
	// Header injection through the recipient or the subject is refused.
	for _, bad := range []mail.Message{{To: "ann@acme.example\r\nBcc: eve@evil.example", Subject: "x"},
		{To: "ann@acme.example", Subject: "x\r\nBcc: eve@evil.example"}, {To: "not an address", Subject: "x"}} {
		if err := s.Enqueue(bad); err == nil {
			t.Errorf("queued %+v", bad)
		}
	}
	if _, err := mail.New(mail.Config{Addr: "no-port", From: "x@y.example"}); err == nil {
		t.Error("an address without a port")
	}
	if err := s.Send(context.Background(), mail.Message{To: "b@acme.example", Subject: "direct", Body: "x"}); err != nil {
		t.Errorf("send: %v", err)
	}
}
