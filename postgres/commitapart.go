package postgres

import "context"

// commitApart commits calls with first and answers each of them. When that transaction fails, the
// calls are committed again in halves with half, down to the one at fault: a request the database
// refuses fails alone, never the others that shared its commit. A fault that is no request's (the
// database unreachable) fails them all, within ctx's deadline: the halves fail fast, and a
// database that hangs uses the deadline up on the first attempt. waitPred, when not nil, waits
// for the predecessor of the whole commit to be done, so that the halves read what it committed;
// failed answers a call with the error that failed it.
func commitApart[C, A any](ctx context.Context, calls []C, first, half func(context.Context, []C) ([]A, error),
	waitPred func(context.Context) error, failed func(error) A) []A {
	answers, err := first(ctx, calls)
	if err == nil {
		return answers
	}
	if waitPred != nil {
		if werr := waitPred(ctx); werr != nil {
			err = werr
		}
	}
	if len(calls) == 1 || ctx.Err() != nil {
		answers = make([]A, len(calls))
		for i := range answers {
			answers[i] = failed(err)
		}
		return answers
	}
	mid := len(calls) / 2
	return append(commitApart(ctx, calls[:mid], half, half, nil, failed),
		commitApart(ctx, calls[mid:], half, half, nil, failed)...)
}
