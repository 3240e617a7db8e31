package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// keysView is a tenant's keys.
type keysView struct {
	Items []api.Key
	Next  string
}

func (c *Console) keys(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	page, err := cl.ListKeys(r.Context(), id, 100, r.URL.Query().Get("cursor"))
	if err != nil {
		return "", view{}, err
	}
	return "keys", view{Title: "Keys of " + id, Nav: "keys", Tenant: id, Data: keysView{Items: page.Items, Next: page.NextCursor}, Notice: noticeOf(r)}, nil
}

// keyBack is the keys page, with a notice.
func (c *Console) keyBack(w http.ResponseWriter, r *http.Request, id, notice string) (string, view, error) {
	return c.seeOther(w, r, "/tenants/"+url.PathEscape(id)+"/keys?notice="+notice)
}

func (c *Console) keyCreate(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	in := api.CreateKey{Description: strings.TrimSpace(r.PostForm.Get("description")), Alias: strings.TrimSpace(r.PostForm.Get("alias"))}
	if _, err := cl.CreateKey(r.Context(), id, in); err != nil {
		if p := refusal(err); p != nil {
			return c.again(w, r, s, cl, c.keys, p.Status, problemMessage(p))
		}
		return "", view{}, err
	}
	return c.keyBack(w, r, id, "key_created")
}

// keyRotate makes a new primary version: not destructive (old versions
// still decrypt), so no confirmation.
func (c *Console) keyRotate(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	if _, err := cl.RotateKey(r.Context(), id, r.PathValue("key")); err != nil {
		return "", view{}, err
	}
	return c.keyBack(w, r, id, "key_rotated")
}

func (c *Console) keyCancelDeletion(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	if _, err := cl.CancelKeyDeletion(r.Context(), id, r.PathValue("key")); err != nil {
		return "", view{}, err
	}
	return c.keyBack(w, r, id, "key_kept")
}

// keyConfirm asks to confirm a key's scheduled deletion: the key's id
// typed, and the waiting period.
func (c *Console) keyConfirm(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	k, err := cl.GetKey(r.Context(), id, r.PathValue("key"))
	if err != nil {
		return "", view{}, err
	}
	back := c.prefix + "/tenants/" + url.PathEscape(id) + "/keys"
	return "confirm", view{Title: "Schedule the deletion of key " + k.ID, Nav: "keys", Tenant: id, Confirm: &confirmView{Action: "Schedule deletion",
		Object: "key " + k.ID, Word: k.ID, Post: back + "/" + url.PathEscape(k.ID) + "/schedule-deletion", Cancel: back, Days: true,
		Explain: "The key stops encrypting and decrypting now. After the waiting period its material is destroyed, and everything encrypted under it can never be decrypted again; until then the deletion can be cancelled."}}, nil
}

func (c *Console) keyScheduleDeletion(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	kid := r.PathValue("key")
	days, derr := strconv.Atoi(r.PostForm.Get("days"))
	if r.PostForm.Get("confirm") != kid || derr != nil || days < 7 || days > 30 {
		return c.again(w, r, s, cl, c.keyConfirm, http.StatusBadRequest, "Type the key's id exactly, and a waiting period of 7 to 30 days.")
	}
	if _, err := cl.ScheduleKeyDeletion(r.Context(), id, kid, days); err != nil {
		return "", view{}, err
	}
	return c.keyBack(w, r, id, "key_deletion")
}
