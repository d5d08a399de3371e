//! The RealWorld (Conduit) reference application end to end, written from the spec
//! (`openapi.yml` of the RealWorld project): the real router on a free port of 127.0.0.1, real
//! HTTP/1.1 requests, a database of its own per test, on whichever backend `DATABASE_URL` names.
//!
//! Every route is called on its happy path and with each error status the spec lists (401, 422)
//! plus the 403 and 404 a client relies on; `favorited`, `favoritesCount` and `following` are
//! checked from the point of view of different callers; two concurrency cases prove the database
//! (not a check-then-write) decides: users favoriting one article at once, and registrations
//! racing for one email. Each test ends by checking that no session was left open or abandoned.

use ops_tests::realworld::{Conduit, Reply, send, send_raw, send_with};
use serde_json::{Value, json};

/// Registers `name` (`name@example.com`, password `secret-<name>`) and returns the token.
async fn register(api: &Conduit, name: &str) -> String {
    let reply = api
        .call(
            "POST",
            "/api/users",
            None,
            Some(json!({"user": {"username": name, "email": format!("{name}@example.com"), "password": format!("secret-{name}")}})),
        )
        .await;
    assert_eq!(reply.status, 201, "register {name}: {}", reply.text);
    reply.body["user"]["token"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// Creates an article and returns its body.
async fn create_article(api: &Conduit, token: &str, title: &str, tags: &[&str]) -> Value {
    let reply = api
        .call(
            "POST",
            "/api/articles",
            Some(token),
            Some(json!({"article": {"title": title, "description": format!("about {title}"), "body": format!("all of {title}"), "tagList": tags}})),
        )
        .await;
    assert_eq!(reply.status, 201, "create {title}: {}", reply.text);
    reply.body["article"].clone()
}

/// The spec's error body: `{"errors": {"body": [at least one string]}}`.
fn assert_errors(reply: &Reply, status: u16) {
    assert_eq!(reply.status, status, "expected {status}: {}", reply.text);
    let messages = reply.body["errors"]["body"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors.body in {}", reply.text));
    assert!(
        !messages.is_empty() && messages.iter().all(Value::is_string),
        "errors.body: {}",
        reply.text
    );
}

/// ISO 8601 in UTC with milliseconds: `2026-11-30T13:45:00.123Z`.
fn assert_timestamp(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    let bytes = text.as_bytes();
    let shape_ok = text.len() == 24
        && text.ends_with('Z')
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
        && bytes[13] == b':'
        && bytes[16] == b':'
        && bytes[19] == b'.'
        && text
            .char_indices()
            .filter(|(i, _)| ![4, 7, 10, 13, 16, 19, 23].contains(i))
            .all(|(_, c)| c.is_ascii_digit());
    assert!(
        shape_ok,
        "not an ISO 8601 UTC timestamp with milliseconds: {text}"
    );
}

fn slugs(reply: &Reply) -> Vec<String> {
    reply.body["articles"]
        .as_array()
        .unwrap_or_else(|| panic!("no articles in {}", reply.text))
        .iter()
        .map(|a| a["slug"].as_str().expect("slug").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_register_login_and_update() {
    let api = Conduit::start("rw_users").await;

    // Register: 201 with the user and a token; bio and image are strings.
    let reply = api
        .call(
            "POST",
            "/api/users",
            None,
            Some(json!({"user": {"username": "jake", "email": "jake@jake.jake", "password": "jakejake"}})),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let user = &reply.body["user"];
    assert_eq!(user["username"], "jake");
    assert_eq!(user["email"], "jake@jake.jake");
    assert_eq!(user["bio"], "");
    assert_eq!(user["image"], "");
    let token = user["token"].as_str().expect("token").to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());

    // Taken email or username, blank or missing fields, malformed bodies: 422 with errors.body.
    for body in [
        json!({"user": {"username": "other", "email": "jake@jake.jake", "password": "x"}}),
        json!({"user": {"username": "jake", "email": "other@jake.jake", "password": "x"}}),
        json!({"user": {"username": "", "email": "e@x.y", "password": "x"}}),
        json!({"user": {"email": "e@x.y", "password": "x"}}),
        json!({"user": {"username": "u", "email": "not-an-email", "password": "x"}}),
        json!({"user": {"username": "u", "email": "u@x.y"}}),
        json!({"username": "u", "email": "u@x.y", "password": "x"}),
    ] {
        let reply = api
            .call("POST", "/api/users", None, Some(body.clone()))
            .await;
        assert_errors(&reply, 422);
    }
    let taken = api
        .call(
            "POST",
            "/api/users",
            None,
            Some(
                json!({"user": {"username": "other", "email": "jake@jake.jake", "password": "x"}}),
            ),
        )
        .await;
    assert!(taken.text.contains("email"), "{}", taken.text);
    let taken = api
        .call(
            "POST",
            "/api/users",
            None,
            Some(
                json!({"user": {"username": "jake", "email": "other@jake.jake", "password": "x"}}),
            ),
        )
        .await;
    assert!(taken.text.contains("username"), "{}", taken.text);
    assert_errors(
        &send_raw(
            api.addr,
            "POST",
            "/api/users",
            "application/json",
            "{not json",
        )
        .await,
        422,
    );
    assert_errors(
        &send_raw(api.addr, "POST", "/api/users", "text/plain", "hello").await,
        422,
    );

    // Login: 200 with a token; wrong password or unknown email 401; blank fields 422.
    let login = api
        .call(
            "POST",
            "/api/users/login",
            None,
            Some(json!({"user": {"email": "jake@jake.jake", "password": "jakejake"}})),
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.text);
    assert_eq!(login.body["user"]["username"], "jake");
    let login_token = login.body["user"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    for body in [
        json!({"user": {"email": "jake@jake.jake", "password": "wrong"}}),
        json!({"user": {"email": "nobody@jake.jake", "password": "jakejake"}}),
    ] {
        let reply = api.call("POST", "/api/users/login", None, Some(body)).await;
        assert_eq!(reply.status, 401, "{}", reply.text);
    }
    for body in [
        json!({"user": {"email": "jake@jake.jake"}}),
        json!({"user": {"email": "", "password": "x"}}),
    ] {
        assert_errors(
            &api.call("POST", "/api/users/login", None, Some(body)).await,
            422,
        );
    }

    // Current user: with either token 200; without, with a bad token or the wrong scheme 401.
    for t in [&token, &login_token] {
        let me = api.call("GET", "/api/user", Some(t), None).await;
        assert_eq!(me.status, 200, "{}", me.text);
        assert_eq!(me.body["user"]["email"], "jake@jake.jake");
        assert_eq!(me.body["user"]["token"], t.as_str());
    }
    assert_eq!(api.call("GET", "/api/user", None, None).await.status, 401);
    assert_eq!(
        api.call("GET", "/api/user", Some("not.a.jwt"), None)
            .await
            .status,
        401
    );
    let forged = api
        .call("GET", "/api/user", Some(&format!("{token}x")), None)
        .await;
    assert_eq!(forged.status, 401);
    let bearer = send_bearer(&api, &token).await;
    assert_eq!(bearer, 401, "only the spec's `Token` scheme is accepted");

    // Update: 200 with the changes; 401 without a token; 422 for blanks or a taken name.
    register(&api, "taken").await;
    let updated = api
        .call(
            "PUT",
            "/api/user",
            Some(&token),
            Some(json!({"user": {"bio": "I like to skateboard", "image": "https://i.stack.imgur.com/xHWG8.jpg", "email": "jake2@jake.jake"}})),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.body["user"]["bio"], "I like to skateboard");
    assert_eq!(
        updated.body["user"]["image"],
        "https://i.stack.imgur.com/xHWG8.jpg"
    );
    assert_eq!(updated.body["user"]["email"], "jake2@jake.jake");
    assert_eq!(updated.body["user"]["username"], "jake");
    assert_eq!(
        api.call(
            "PUT",
            "/api/user",
            None,
            Some(json!({"user": {"bio": "x"}}))
        )
        .await
        .status,
        401
    );
    for body in [
        json!({"user": {"username": "taken"}}),
        json!({"user": {"email": "taken@example.com"}}),
        json!({"user": {"username": ""}}),
        json!({"user": {"password": ""}}),
        json!({"bio": "no envelope"}),
    ] {
        assert_errors(
            &api.call("PUT", "/api/user", Some(&token), Some(body)).await,
            422,
        );
    }
    // A new password works at the next login, the old one no longer does.
    let changed = api
        .call(
            "PUT",
            "/api/user",
            Some(&token),
            Some(json!({"user": {"password": "newpass"}})),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    let relogin = |password: &'static str| {
        api.call(
            "POST",
            "/api/users/login",
            None,
            Some(json!({"user": {"email": "jake2@jake.jake", "password": password}})),
        )
    };
    assert_eq!(relogin("newpass").await.status, 200);
    assert_eq!(relogin("jakejake").await.status, 401);
    // Nothing of the failed requests was kept: the user is as the last good update left it.
    let me = api.call("GET", "/api/user", Some(&token), None).await;
    assert_eq!(me.body["user"]["username"], "jake");
    assert_eq!(me.body["user"]["email"], "jake2@jake.jake");

    // Unknown routes answer 404 in the same error shape.
    assert_errors(&api.call("GET", "/api/nothing-here", None, None).await, 404);
    api.stop().await;
}

/// `Authorization: Bearer <jwt>`: not the spec's scheme.
async fn send_bearer(api: &Conduit, token: &str) -> u16 {
    let headers = [("authorization", format!("Bearer {token}"))];
    send_with(api.addr, "GET", "/api/user", &headers, Default::default())
        .await
        .expect("send")
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn profiles_and_following() {
    let api = Conduit::start("rw_profiles").await;
    let alice = register(&api, "alice").await;
    let bob = register(&api, "bob").await;

    // Anonymous: following is false; unknown user 404; a bad token on an optional route is 401.
    let anonymous = api.call("GET", "/api/profiles/bob", None, None).await;
    assert_eq!(anonymous.status, 200, "{}", anonymous.text);
    assert_eq!(
        anonymous.body,
        json!({"profile": {"username": "bob", "bio": "", "image": "", "following": false}})
    );
    assert_errors(
        &api.call("GET", "/api/profiles/nobody", None, None).await,
        404,
    );
    assert_eq!(
        api.call("GET", "/api/profiles/bob", Some("garbage"), None)
            .await
            .status,
        401
    );

    // Follow: 200 with following true, for the follower only; twice is still one follow.
    for _ in 0..2 {
        let followed = api
            .call("POST", "/api/profiles/bob/follow", Some(&alice), None)
            .await;
        assert_eq!(followed.status, 200, "{}", followed.text);
        assert_eq!(followed.body["profile"]["following"], true);
        assert_eq!(followed.body["profile"]["username"], "bob");
    }
    let seen = api
        .call("GET", "/api/profiles/bob", Some(&alice), None)
        .await;
    assert_eq!(seen.body["profile"]["following"], true);
    let seen = api
        .call("GET", "/api/profiles/alice", Some(&bob), None)
        .await;
    assert_eq!(seen.body["profile"]["following"], false);

    // Errors: no token 401, unknown user 404, oneself 422.
    assert_eq!(
        api.call("POST", "/api/profiles/bob/follow", None, None)
            .await
            .status,
        401
    );
    assert_eq!(
        api.call("DELETE", "/api/profiles/bob/follow", None, None)
            .await
            .status,
        401
    );
    assert_errors(
        &api.call("POST", "/api/profiles/nobody/follow", Some(&alice), None)
            .await,
        404,
    );
    assert_errors(
        &api.call("DELETE", "/api/profiles/nobody/follow", Some(&alice), None)
            .await,
        404,
    );
    assert_errors(
        &api.call("POST", "/api/profiles/alice/follow", Some(&alice), None)
            .await,
        422,
    );

    // Unfollow: 200 with following false, twice too.
    for _ in 0..2 {
        let unfollowed = api
            .call("DELETE", "/api/profiles/bob/follow", Some(&alice), None)
            .await;
        assert_eq!(unfollowed.status, 200, "{}", unfollowed.text);
        assert_eq!(unfollowed.body["profile"]["following"], false);
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn articles_create_get_update_delete() {
    let api = Conduit::start("rw_articles").await;
    let jake = register(&api, "jake").await;
    let other = register(&api, "other").await;

    // Create: 201, the spec's fields, tags in the order given (repeats dropped).
    let reply = api
        .call(
            "POST",
            "/api/articles",
            Some(&jake),
            Some(json!({"article": {"title": "How to train your dragon", "description": "Ever wonder how?", "body": "You have to believe", "tagList": ["reactjs", "angularjs", "dragons", "reactjs"]}})),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let article = &reply.body["article"];
    assert_eq!(article["slug"], "how-to-train-your-dragon");
    assert_eq!(article["title"], "How to train your dragon");
    assert_eq!(article["description"], "Ever wonder how?");
    assert_eq!(article["body"], "You have to believe");
    assert_eq!(
        article["tagList"],
        json!(["reactjs", "angularjs", "dragons"])
    );
    assert_eq!(article["favorited"], false);
    assert_eq!(article["favoritesCount"], 0);
    assert_eq!(
        article["author"],
        json!({"username": "jake", "bio": "", "image": "", "following": false})
    );
    assert_timestamp(&article["createdAt"]);
    assert_timestamp(&article["updatedAt"]);
    assert_eq!(article["createdAt"], article["updatedAt"]);

    // The same title again: a different, still unique slug. No tagList: an empty list.
    let again = api
        .call(
            "POST",
            "/api/articles",
            Some(&jake),
            Some(json!({"article": {"title": "How to train your dragon", "description": "d", "body": "b"}})),
        )
        .await;
    assert_eq!(again.status, 201, "{}", again.text);
    let second_slug = again.body["article"]["slug"]
        .as_str()
        .expect("slug")
        .to_owned();
    assert_ne!(second_slug, "how-to-train-your-dragon");
    assert!(
        second_slug.starts_with("how-to-train-your-dragon-"),
        "{second_slug}"
    );
    assert_eq!(again.body["article"]["tagList"], json!([]));

    // Create errors: 401 without a token, 422 for blank or missing fields and bad types.
    let good = json!({"article": {"title": "t", "description": "d", "body": "b"}});
    assert_eq!(
        api.call("POST", "/api/articles", None, Some(good))
            .await
            .status,
        401
    );
    for body in [
        json!({"article": {"description": "d", "body": "b"}}),
        json!({"article": {"title": "t", "description": "", "body": "b"}}),
        json!({"article": {"title": "t", "description": "d"}}),
        json!({"article": {"title": "t", "description": "d", "body": "b", "tagList": "not-a-list"}}),
        json!({"title": "t", "description": "d", "body": "b"}),
    ] {
        assert_errors(
            &api.call("POST", "/api/articles", Some(&jake), Some(body))
                .await,
            422,
        );
    }

    // Get: 200 for anyone, with the body; 404 for an unknown slug.
    let got = api
        .call("GET", "/api/articles/how-to-train-your-dragon", None, None)
        .await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.body["article"]["body"], "You have to believe");
    assert_eq!(
        got.body["article"]["tagList"],
        json!(["reactjs", "angularjs", "dragons"])
    );
    assert_errors(
        &api.call("GET", "/api/articles/no-such-article", None, None)
            .await,
        404,
    );

    // Update: only the author (403 for others), 404 for none, 401 without a token, 422 blank.
    let change = json!({"article": {"body": "With two hands"}});
    let path = "/api/articles/how-to-train-your-dragon";
    assert_eq!(
        api.call("PUT", path, None, Some(change.clone()))
            .await
            .status,
        401
    );
    assert_errors(
        &api.call("PUT", path, Some(&other), Some(change.clone()))
            .await,
        403,
    );
    assert_errors(
        &api.call(
            "PUT",
            "/api/articles/no-such-article",
            Some(&jake),
            Some(change.clone()),
        )
        .await,
        404,
    );
    assert_errors(
        &api.call(
            "PUT",
            path,
            Some(&jake),
            Some(json!({"article": {"title": ""}})),
        )
        .await,
        422,
    );
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let updated = api.call("PUT", path, Some(&jake), Some(change)).await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    let body = &updated.body["article"];
    assert_eq!(body["body"], "With two hands");
    assert_eq!(
        body["slug"], "how-to-train-your-dragon",
        "same title, same slug"
    );
    assert_eq!(body["tagList"], json!(["reactjs", "angularjs", "dragons"]));
    assert_eq!(body["createdAt"], article["createdAt"]);
    assert!(body["updatedAt"].as_str() > article["updatedAt"].as_str());

    // A new title gives a new slug; the old one is gone.
    let retitled = api
        .call(
            "PUT",
            path,
            Some(&jake),
            Some(json!({"article": {"title": "Did you train your dragon?"}})),
        )
        .await;
    assert_eq!(retitled.status, 200, "{}", retitled.text);
    assert_eq!(
        retitled.body["article"]["slug"],
        "did-you-train-your-dragon"
    );
    assert_eq!(api.call("GET", path, None, None).await.status, 404);

    // Delete: 401, 403, 404, then 204 and gone.
    let path = "/api/articles/did-you-train-your-dragon";
    assert_eq!(api.call("DELETE", path, None, None).await.status, 401);
    assert_errors(&api.call("DELETE", path, Some(&other), None).await, 403);
    assert_errors(
        &api.call("DELETE", "/api/articles/nope", Some(&jake), None)
            .await,
        404,
    );
    // Favorites and comments go with the article.
    assert_eq!(
        api.call("POST", &format!("{path}/favorite"), Some(&other), None)
            .await
            .status,
        200
    );
    let commented = api
        .call(
            "POST",
            &format!("{path}/comments"),
            Some(&other),
            Some(json!({"comment": {"body": "nice"}})),
        )
        .await;
    assert_eq!(commented.status, 200, "{}", commented.text);
    let deleted = api.call("DELETE", path, Some(&jake), None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert!(deleted.text.is_empty());
    assert_errors(&api.call("GET", path, None, None).await, 404);
    assert_errors(&api.call("DELETE", path, Some(&jake), None).await, 404);
    let tags = api.call("GET", "/api/tags", None, None).await;
    assert_eq!(
        tags.body,
        json!({"tags": []}),
        "the deleted article's tags are gone"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_filters_pages_and_feed() {
    let api = Conduit::start("rw_lists").await;
    let jake = register(&api, "jake").await;
    let anna = register(&api, "anna").await;
    let carl = register(&api, "carl").await;
    // Jake writes 4, Anna 3, in this order; the list is newest first.
    let mut written = Vec::new();
    for (token, title, tags) in [
        (&jake, "j1", vec!["dragons", "training"]),
        (&anna, "a1", vec!["dragons"]),
        (&jake, "j2", vec!["training"]),
        (&anna, "a2", vec![]),
        (&jake, "j3", vec!["dragons"]),
        (&anna, "a3", vec!["cats"]),
        (&jake, "j4", vec![]),
    ] {
        written.push(
            create_article(&api, token, title, &tags).await["slug"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        // Distinct milliseconds, so that newest-first is by time, not only by id.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let newest_first: Vec<String> = written.iter().rev().cloned().collect();

    let all = api.call("GET", "/api/articles", None, None).await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(all.body["articlesCount"], 7);
    assert_eq!(slugs(&all), newest_first);
    for item in all.body["articles"].as_array().unwrap() {
        assert!(
            item.get("body").is_none(),
            "list items have no body: {item}"
        );
        for field in [
            "slug",
            "title",
            "description",
            "tagList",
            "createdAt",
            "updatedAt",
            "favorited",
            "favoritesCount",
            "author",
        ] {
            assert!(item.get(field).is_some(), "{field} missing in {item}");
        }
    }

    // Paging: limit and offset; articlesCount stays the total.
    let page = api
        .call("GET", "/api/articles?limit=2&offset=1", None, None)
        .await;
    assert_eq!(slugs(&page), newest_first[1..3].to_vec());
    assert_eq!(page.body["articlesCount"], 7);
    let beyond = api.call("GET", "/api/articles?offset=50", None, None).await;
    assert_eq!(beyond.body, json!({"articles": [], "articlesCount": 7}));
    for bad in ["limit=0", "limit=abc", "offset=-1", "limit=1.5"] {
        assert_errors(
            &api.call("GET", &format!("/api/articles?{bad}"), None, None)
                .await,
            422,
        );
    }

    // Filters: tag, author, favorited; unknown values give an empty list.
    let by_tag = api
        .call("GET", "/api/articles?tag=dragons", None, None)
        .await;
    assert_eq!(slugs(&by_tag), vec!["j3", "a1", "j1"]);
    assert_eq!(by_tag.body["articlesCount"], 3);
    let by_author = api
        .call("GET", "/api/articles?author=anna", None, None)
        .await;
    assert_eq!(slugs(&by_author), vec!["a3", "a2", "a1"]);
    let both = api
        .call("GET", "/api/articles?author=jake&tag=training", None, None)
        .await;
    assert_eq!(slugs(&both), vec!["j2", "j1"]);
    assert_eq!(both.body["articlesCount"], 2);
    for path in [
        "/api/articles?tag=nothing",
        "/api/articles?author=nobody",
        "/api/articles?favorited=nobody",
    ] {
        let empty = api.call("GET", path, None, None).await;
        assert_eq!(
            empty.body,
            json!({"articles": [], "articlesCount": 0}),
            "{path}"
        );
    }
    for slug in ["j1", "a3"] {
        let reply = api
            .call(
                "POST",
                &format!("/api/articles/{slug}/favorite"),
                Some(&carl),
                None,
            )
            .await;
        assert_eq!(reply.status, 200);
    }
    api.call("POST", "/api/articles/j1/favorite", Some(&anna), None)
        .await;
    let favorited = api
        .call("GET", "/api/articles?favorited=carl", None, None)
        .await;
    assert_eq!(slugs(&favorited), vec!["a3", "j1"]);

    // favorited, favoritesCount and following as each caller sees them.
    let as_carl = api
        .call(
            "GET",
            "/api/articles?author=jake&limit=10",
            Some(&carl),
            None,
        )
        .await;
    let j1 = as_carl.body["articles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["slug"] == "j1")
        .unwrap()
        .clone();
    assert_eq!(j1["favorited"], true);
    assert_eq!(j1["favoritesCount"], 2);
    assert_eq!(j1["author"]["following"], false);
    let anonymous = api
        .call("GET", "/api/articles?tag=training", None, None)
        .await;
    let j1 = anonymous.body["articles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["slug"] == "j1")
        .unwrap()
        .clone();
    assert_eq!(j1["favorited"], false);
    assert_eq!(j1["favoritesCount"], 2);
    assert_eq!(j1["tagList"], json!(["dragons", "training"]));

    // Feed: 401 without a token; empty until Carl follows someone; then only their articles.
    assert_eq!(
        api.call("GET", "/api/articles/feed", None, None)
            .await
            .status,
        401
    );
    let empty = api
        .call("GET", "/api/articles/feed", Some(&carl), None)
        .await;
    assert_eq!(empty.status, 200, "{}", empty.text);
    assert_eq!(empty.body, json!({"articles": [], "articlesCount": 0}));
    api.call("POST", "/api/profiles/anna/follow", Some(&carl), None)
        .await;
    let feed = api
        .call("GET", "/api/articles/feed", Some(&carl), None)
        .await;
    assert_eq!(slugs(&feed), vec!["a3", "a2", "a1"]);
    assert_eq!(feed.body["articlesCount"], 3);
    for item in feed.body["articles"].as_array().unwrap() {
        assert_eq!(item["author"]["following"], true);
    }
    assert_eq!(
        feed.body["articles"][0]["favorited"], true,
        "Carl favorited a3"
    );
    let paged = api
        .call(
            "GET",
            "/api/articles/feed?limit=1&offset=1",
            Some(&carl),
            None,
        )
        .await;
    assert_eq!(slugs(&paged), vec!["a2"]);
    assert_eq!(paged.body["articlesCount"], 3);
    assert_errors(
        &api.call("GET", "/api/articles/feed?limit=0", Some(&carl), None)
            .await,
        422,
    );

    // Tags: every tag in use, the most used first.
    let tags = api.call("GET", "/api/tags", None, None).await;
    assert_eq!(tags.status, 200, "{}", tags.text);
    assert_eq!(tags.body, json!({"tags": ["dragons", "training", "cats"]}));
    let _ = jake;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn favorites_and_comments() {
    let api = Conduit::start("rw_favorites").await;
    let jake = register(&api, "jake").await;
    let anna = register(&api, "anna").await;
    create_article(&api, &jake, "Dragons", &["dragons"]).await;

    // Favorite: 200 with favorited and the count; twice stays one; unfavorite takes it back.
    let fav = api
        .call("POST", "/api/articles/dragons/favorite", Some(&anna), None)
        .await;
    assert_eq!(fav.status, 200, "{}", fav.text);
    assert_eq!(fav.body["article"]["favorited"], true);
    assert_eq!(fav.body["article"]["favoritesCount"], 1);
    assert_eq!(fav.body["article"]["body"], "all of Dragons");
    let fav = api
        .call("POST", "/api/articles/dragons/favorite", Some(&anna), None)
        .await;
    assert_eq!(fav.body["article"]["favoritesCount"], 1);
    let fav = api
        .call("POST", "/api/articles/dragons/favorite", Some(&jake), None)
        .await;
    assert_eq!(fav.body["article"]["favoritesCount"], 2);
    let seen = api
        .call("GET", "/api/articles/dragons", Some(&anna), None)
        .await;
    assert_eq!(seen.body["article"]["favorited"], true);
    assert_eq!(seen.body["article"]["favoritesCount"], 2);
    let unfav = api
        .call(
            "DELETE",
            "/api/articles/dragons/favorite",
            Some(&anna),
            None,
        )
        .await;
    assert_eq!(unfav.status, 200, "{}", unfav.text);
    assert_eq!(unfav.body["article"]["favorited"], false);
    assert_eq!(unfav.body["article"]["favoritesCount"], 1);
    let unfav = api
        .call(
            "DELETE",
            "/api/articles/dragons/favorite",
            Some(&anna),
            None,
        )
        .await;
    assert_eq!(unfav.body["article"]["favoritesCount"], 1);
    for method in ["POST", "DELETE"] {
        assert_eq!(
            api.call(method, "/api/articles/dragons/favorite", None, None)
                .await
                .status,
            401
        );
        assert_errors(
            &api.call(method, "/api/articles/nope/favorite", Some(&anna), None)
                .await,
            404,
        );
    }

    // Comments: add (200, the spec's status), list oldest first, delete by the author only.
    let path = "/api/articles/dragons/comments";
    let first = api
        .call(
            "POST",
            path,
            Some(&anna),
            Some(json!({"comment": {"body": "Thank you so much!"}})),
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    let comment = &first.body["comment"];
    assert!(comment["id"].is_i64(), "{comment}");
    assert_eq!(comment["body"], "Thank you so much!");
    assert_eq!(
        comment["author"],
        json!({"username": "anna", "bio": "", "image": "", "following": false})
    );
    assert_timestamp(&comment["createdAt"]);
    assert_timestamp(&comment["updatedAt"]);
    let first_id = comment["id"].as_i64().unwrap();
    let second = api
        .call(
            "POST",
            path,
            Some(&jake),
            Some(json!({"comment": {"body": "You are welcome"}})),
        )
        .await;
    let second_id = second.body["comment"]["id"].as_i64().unwrap();
    assert_eq!(
        api.call("POST", path, None, Some(json!({"comment": {"body": "x"}})))
            .await
            .status,
        401
    );
    for body in [
        json!({"comment": {"body": ""}}),
        json!({"comment": {}}),
        json!({"body": "x"}),
    ] {
        assert_errors(&api.call("POST", path, Some(&anna), Some(body)).await, 422);
    }
    assert_errors(
        &api.call(
            "POST",
            "/api/articles/nope/comments",
            Some(&anna),
            Some(json!({"comment": {"body": "x"}})),
        )
        .await,
        404,
    );

    api.call("POST", "/api/profiles/jake/follow", Some(&anna), None)
        .await;
    let listed = api.call("GET", path, Some(&anna), None).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let comments = listed.body["comments"].as_array().unwrap();
    assert_eq!(comments.len(), 2);
    assert_eq!(comments[0]["id"], first_id);
    assert_eq!(comments[1]["id"], second_id);
    assert_eq!(
        comments[1]["author"]["following"], true,
        "Anna follows Jake"
    );
    assert_eq!(comments[0]["author"]["following"], false);
    let anonymous = api.call("GET", path, None, None).await;
    assert_eq!(anonymous.body["comments"][1]["author"]["following"], false);
    assert_errors(
        &api.call("GET", "/api/articles/nope/comments", None, None)
            .await,
        404,
    );
    assert_eq!(api.call("GET", path, Some("bad"), None).await.status, 401);

    let first_path = format!("{path}/{first_id}");
    assert_eq!(
        api.call("DELETE", &first_path, None, None).await.status,
        401
    );
    assert_errors(
        &api.call("DELETE", &first_path, Some(&jake), None).await,
        403,
    );
    assert_errors(
        &api.call("DELETE", &format!("{path}/999999"), Some(&anna), None)
            .await,
        404,
    );
    assert_errors(
        &api.call("DELETE", &format!("{path}/abc"), Some(&anna), None)
            .await,
        422,
    );
    // A comment id through another article's path is not found there.
    create_article(&api, &anna, "Cats", &[]).await;
    assert_errors(
        &api.call(
            "DELETE",
            &format!("/api/articles/cats/comments/{first_id}"),
            Some(&anna),
            None,
        )
        .await,
        404,
    );
    let deleted = api.call("DELETE", &first_path, Some(&anna), None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_errors(
        &api.call("DELETE", &first_path, Some(&anna), None).await,
        404,
    );
    let listed = api.call("GET", path, None, None).await;
    assert_eq!(listed.body["comments"].as_array().unwrap().len(), 1);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_favorites_are_all_counted() {
    const USERS: usize = 8;
    let api = Conduit::start("rw_concurrent_favorites").await;
    let author = register(&api, "author").await;
    create_article(&api, &author, "Popular", &[]).await;
    let mut tokens = Vec::new();
    for i in 0..USERS {
        tokens.push(register(&api, &format!("fan{i}")).await);
    }
    // All at once, twice over (the first pair of rounds is the spec's "two users at once").
    for round in 0..2 {
        let calls = tokens.iter().map(|token| {
            let token = token.clone();
            let addr = api.addr;
            tokio::spawn(async move {
                send(
                    addr,
                    "POST",
                    "/api/articles/popular/favorite",
                    Some(&token),
                    None,
                )
                .await
                .expect("favorite")
            })
        });
        for call in calls.collect::<Vec<_>>() {
            let reply = call.await.expect("task");
            assert_eq!(reply.status, 200, "round {round}: {}", reply.text);
            assert_eq!(reply.body["article"]["favorited"], true);
            let count = reply.body["article"]["favoritesCount"].as_i64().unwrap();
            assert!((1..=USERS as i64).contains(&count), "{count}");
        }
    }
    let got = api.call("GET", "/api/articles/popular", None, None).await;
    assert_eq!(got.body["article"]["favoritesCount"], USERS as i64);
    // And all away at once.
    let calls: Vec<_> = tokens
        .iter()
        .map(|token| {
            let token = token.clone();
            let addr = api.addr;
            tokio::spawn(async move {
                send(
                    addr,
                    "DELETE",
                    "/api/articles/popular/favorite",
                    Some(&token),
                    None,
                )
                .await
                .expect("unfavorite")
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.expect("task").status, 200);
    }
    let got = api.call("GET", "/api/articles/popular", None, None).await;
    assert_eq!(got.body["article"]["favoritesCount"], 0);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_with_one_email() {
    let api = Conduit::start("rw_concurrent_register").await;
    for round in 0..5 {
        let email = format!("same{round}@example.com");
        let calls: Vec<_> = (0..2)
            .map(|i| {
                let addr = api.addr;
                let body = json!({"user": {"username": format!("racer{round}x{i}"), "email": email, "password": "pw"}});
                tokio::spawn(async move { send(addr, "POST", "/api/users", None, Some(body)).await.expect("register") })
            })
            .collect();
        let mut statuses = Vec::new();
        for call in calls {
            let reply = call.await.expect("task");
            if reply.status == 422 {
                assert_errors(&reply, 422);
                assert!(reply.text.contains("email"), "{}", reply.text);
            }
            statuses.push(reply.status);
        }
        statuses.sort_unstable();
        assert_eq!(statuses, vec![201, 422], "round {round}");
    }
    api.stop().await;
}
