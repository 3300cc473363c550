package echo

import "errors"

// ErrNotYours means the echo user's account exists but this home has no
// credential for it and no password was given (a wrong one fails the login
// with loginapi.ErrWrongPassword). Run returns it wrapped with the user, for
// example `echo user "echo" exists and this home cannot log in as it: set
// PARLEY_PASSWORD: …`.
var ErrNotYours = errors.New("exists and this home cannot log in as it: set PARLEY_PASSWORD")
