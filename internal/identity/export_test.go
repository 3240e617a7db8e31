package identity

// The bindings of wrapped TOTP secrets, for tests that check a user's
// cannot unwrap an operator's.
var (
	TOTPBinding         = totpBinding
	OperatorTOTPBinding = operatorTOTPBinding
)
