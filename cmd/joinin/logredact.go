package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/joinincard/engine/events"
)

// redactingHandler keeps personal numbers out of the log: a message or an attribute may quote
// what a request or an event named (a refusal's reason, a database error quoting the value it
// refused, a name given with --by), and a client may have put a personal number there, quoted or
// not. Every text goes through events.RedactWords before the handler it wraps writes it, and so
// does every other value as it would print, which is replaced by its redacted text when that
// differs. Numbers (offsets, counts) are the engine's own and are written as they are.
type redactingHandler struct {
	next slog.Handler
}

func (h redactingHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h redactingHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, events.RedactWords(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	redacted := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		redacted[i] = redactAttr(a)
	}
	return redactingHandler{next: h.next.WithAttrs(redacted)}
}

func (h redactingHandler) WithGroup(name string) slog.Handler {
	return redactingHandler{next: h.next.WithGroup(name)}
}

// redactAttr returns a with its texts redacted: strings, errors and what prints as text.
func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, events.RedactWords(v.String()))
	case slog.KindGroup:
		group := v.Group()
		redacted := make([]any, len(group))
		for i, g := range group {
			redacted[i] = redactAttr(g)
		}
		return slog.Group(a.Key, redacted...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, events.RedactWords(x.Error()))
		case interface{ String() string }:
			return slog.String(a.Key, events.RedactWords(x.String()))
		default:
			// A slice or a map of texts: written as it is unless it prints something to withhold.
			if s := fmt.Sprint(x); events.RedactWords(s) != s {
				return slog.String(a.Key, events.RedactWords(s))
			}
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
