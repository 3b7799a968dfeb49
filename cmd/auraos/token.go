package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/auraos/realtime/socketadapter/jwtauth"
)

func newTokenCommand() *cobra.Command {
	var (
		secret, uid, email, name, issuer, audience string
		admin                                      bool
		ttl                                        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "token --uid U [--email E] [--name N] [--admin] [--ttl 1h]",
		Short: "Mint an HS256 token with the configured secret, for development and tests",
		Long: `Mint prints an HS256 JSON Web Token for a user, signed with --jwt-secret
(AURAOS_JWT_SECRET), that a server started with the same secret accepts. Clients pass it
as auth.token in the Socket.IO handshake.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if secret == "" {
				return fmt.Errorf("--jwt-secret (or AURAOS_JWT_SECRET) is required")
			}
			tok, err := jwtauth.Mint([]byte(secret), jwtauth.MintOptions{
				UID: uid, Email: email, Name: name, Admin: admin, TTL: ttl, Issuer: issuer, Audience: audience,
			})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), tok)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&secret, "jwt-secret", "", "HS256 secret, at least 32 bytes (prefer AURAOS_JWT_SECRET)")
	f.StringVar(&uid, "uid", "", "the user id (sub claim); required")
	f.StringVar(&email, "email", "", "email claim")
	f.StringVar(&name, "name", "", "name claim (the display name)")
	f.BoolVar(&admin, "admin", false, "make the user an admin (admin: true)")
	f.DurationVar(&ttl, "ttl", time.Hour, "how long the token is valid")
	f.StringVar(&issuer, "jwt-issuer", "", "iss claim")
	f.StringVar(&audience, "jwt-audience", "", "aud claim")
	_ = cmd.MarkFlagRequired("uid")
	return cmd
}
