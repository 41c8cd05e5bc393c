package core

import "unicode/utf8"

// EstimateTokens is a rough token count for text whose server reported no
// usage. It follows the common rule of thumb for BPE tokenizers on English
// text (about four characters a token): ASCII bytes count a quarter token
// each, rounded up, and every non-ASCII character counts as one token, since
// byte-level BPE vocabularies split accented, CJK and other scripts into far
// shorter pieces. The result is 0 for "" and at least 1 otherwise. It is an
// estimate only: expect errors of ±30% against a real tokenizer.
func EstimateTokens(s string) int {
	if s == "" {
		return 0
	}
	ascii, other := 0, 0
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			ascii++
			i++
			continue
		}
		_, n := utf8.DecodeRuneInString(s[i:])
		other++
		i += n
	}
	return (ascii+3)/4 + other
}
