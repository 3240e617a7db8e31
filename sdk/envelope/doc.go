// Package envelope is Bulkhead's client-side envelope encryption: messages
// of any size encrypted with AES-256-GCM under data keys that the tenant's
// KMS key wraps, bound to an encryption context that names the tenant.
//
//	p := envelope.KMSProvider{Client: client.New(url, tenantToken)}
//	c, _ := envelope.New(envelope.Config{Provider: p, Cache: envelope.NewCache(envelope.CacheConfig{})})
//	ec := map[string]string{"tenant_id": "acme", "table": "invoices"}
//	blob, err := c.Encrypt(ctx, "alias/customer-acme", ec, plaintext)
//	plaintext, err = c.Decrypt(ctx, blob, ec)
//
// A Crypter asks its KeyProvider for a data key per message, or reuses one
// from a Cache within its limits (age, messages, bytes). Every message
// derives its own AES key from the data key and a random 32-byte message
// id with HKDF-SHA256, so a cached data key encrypts many messages with no
// risk of a repeated key and nonce. The encryption context must hold
// "tenant_id"; it is stored in the message, authenticated, and bound to
// the wrapped data key by the KMS. Decrypt needs the exact same context.
// Cache entries are keyed by tenant_id, key id and the whole context, so
// a data key is never used for another tenant or context.
//
// AppendEncrypt and AppendDecrypt append to a caller's buffer, which can
// be reused from message to message (Encrypt and Decrypt allocate the
// result: for large messages that costs more than the cryptography's
// overhead). NewEncryptWriter and NewDecryptReader do the same as streams;
// the reader holds one frame (64 KiB by default) and never releases
// plaintext of a frame that has not authenticated.
//
// Errors: ErrInvalidContext (no tenant_id, …), ErrContextMismatch,
// ErrMalformed, ErrTruncated, ErrAuthentication, ErrFieldMismatch, and the
// provider's own (a *client.Error for KMSProvider), wrapped.
//
// # Fields
//
// EncryptField and DecryptField encrypt one column value of one row, as
// the DynamoDB Encryption Client does an item's attributes: the value is
// bound to the field's context {tenant_id, table, primary_key, column}
// (a FieldRef), so a value copied to another row, column, table or tenant
// does not decrypt there — a leaked or misplaced value stays sealed even
// where a query has gone wrong.
//
//	ref := envelope.FieldRef{Tenant: "acme", Table: "notes", PrimaryKey: "42", Column: "body"}
//	v, err := c.EncryptField(ctx, "alias/customer-acme", ref, []byte("text"))
//	text, err := c.DecryptField(ctx, ref, v)
//
// Binding each value to its row must not cost a KMS call per row, so the
// row is not in the data key's context: the data key's context is
// {tenant_id, bulkhead_purpose: "field v1"}, one per tenant (and key id),
// reused from the Cache across rows, tables and columns like a message's;
// the whole field context goes into the derivation of each value's own
// key. A value of another tenant fails in the provider, which does not
// unwrap another tenant's data key under this tenant's context; a value
// of another table, row or column of the tenant fails the key
// commitment: ErrFieldMismatch. The field context is the canonical
// encoding below (length-prefixed: "a|b" + "c" and "a" + "b|c" are two
// contexts); a primary key of several columns is made one string with
// CompositeKey, also length-prefixed.
//
// A field value is not a message (its first byte tells them apart) and is
// smaller (83 bytes, the plaintext and the wrapped data key; no context
// stored: the row, table and column it belongs to are where it is):
//
//	version        1 byte   0xF1
//	wrapped length 2 bytes  1 … 4096
//	wrapped key      …      the data key as the KMS wrapped it
//	value id      32 bytes  random per value; the HKDF salt
//	commitment    32 bytes  key commitment
//	ciphertext       …      AES-256-GCM of the plaintext, additional
//	                        data = all the bytes above
//	tag           16 bytes
//
// OKM = HKDF-SHA256(secret = data key, salt = value id, info = "bulkhead
// envelope field v1 AES-256-GCM HKDF-SHA256 commit" ‖ canonical field
// context, 76 bytes); key OKM[0:32], nonce OKM[32:44], commitment
// OKM[44:76], compared in constant time before decrypting.
//
// # Message format, version 1
//
// All integers are big-endian. A message is a header and one or more
// frames:
//
//	header:
//	  version           1 byte   0xB1
//	  algorithm         1 byte   0x01: AES-256-GCM, HKDF-SHA256 message key, key commitment
//	  message id       32 bytes  random per message; the HKDF salt
//	  frame size        4 bytes  plaintext bytes per frame, 64 … 16 MiB (default 65536)
//	  context length    2 bytes  length of the next field, 2 … 8192
//	  context             …      canonical encryption context (below)
//	  wrapped length    2 bytes  1 … 4096
//	  wrapped key         …      the data key as the KMS wrapped it (opaque)
//	  commitment       32 bytes  key commitment (below)
//	  header tag       16 bytes  AES-GCM tag, frame nonce 0, empty plaintext,
//	                             additional data = all header bytes above
//	frame, repeated:
//	  flag              1 byte   0x00 regular, 0x01 final
//	  length            4 bytes  plaintext length: the frame size for a regular
//	                             frame, 0 … frame size for the final one
//	  ciphertext     length bytes
//	  tag              16 bytes  AES-GCM tag
//
// The message ends with its one final frame; nothing may follow it. An
// encrypter writes regular frames while more plaintext follows, so the
// final frame holds 1 … frame size bytes (0 only in an empty message); a
// decrypter accepts any final length up to the frame size.
//
// Canonical encryption context: a pair count (2 bytes), then the pairs in
// ascending byte order of their keys, each as key length (2 bytes), key,
// value length (2 bytes), value. Keys are non-empty, keys and values valid
// UTF-8, and "tenant_id" is present and not empty.
//
// Keys: OKM = HKDF-SHA256(secret = data key (32 bytes), salt = message id,
// info = "bulkhead envelope v1 AES-256-GCM HKDF-SHA256 commit", 76 bytes);
// the message key is OKM[0:32], the nonce base OKM[32:44], the commitment
// OKM[44:76]. A decrypter compares the commitment (in constant time)
// before anything else, so a message decrypts under one data key only.
//
// Frame i (1, 2, …; 0 is the header tag) is sealed with the nonce
// base XOR i (i as 8 bytes, into the nonce's last 8 bytes) and additional
// data = i (8 bytes) ‖ the frame's flag and length (5 bytes). A frame
// therefore authenticates only at its place in its message and with its
// flag: reordered, repeated or dropped frames fail, a message cut after a
// regular frame has no final frame (ErrTruncated), and a regular frame
// cannot be passed off as the final one.
package envelope
