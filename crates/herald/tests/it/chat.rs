//! Chat: the GameTalk v1.1 server API replayed request shape by request shape (every path,
//! with and without optional fields, each documented error), field by field; tags; messages
//! with history paging; concurrency; and the events every change writes.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestApp, assert_error, send};

crate::both_backends!(
    gametalk_auth_and_transaction_ids,
    gametalk_channels_conform,
    gametalk_channel_list_filters_and_paging,
    gametalk_subscriptions_and_auto_delete,
    gametalk_tags_conform,
    gametalk_users_conform,
    tags_api_validates_and_emits_events,
    messages_send_edit_delete_and_rules,
    history_pages_skip_and_repeat_nothing,
    concurrent_subscribes_count_right,
    concurrent_sends_get_unique_increasing_ids,
    a_send_that_fails_its_batch_fails_alone,
    concurrent_leaves_delete_an_auto_delete_channel,
    concurrent_updates_of_different_fields_all_stay,
);

/// A GameTalk client of the test app's project: its app key and secret key.
struct Gt<'a> {
    app: &'a TestApp,
    app_key: String,
    secret: String,
}

impl<'a> Gt<'a> {
    async fn new(app: &'a TestApp) -> Gt<'a> {
        let (status, project) = app.get(&format!("/api/v1/projects/{}", app.project_id)).await;
        assert_eq!(status, StatusCode::OK, "{project}");
        Gt {
            app,
            app_key: project["appKey"].as_str().expect("appKey").into(),
            secret: project["secretKey"].as_str().expect("secretKey").into(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("/game-talk/v1.1/appkeys/{}{path}", self.app_key)
    }

    /// Sends a call; asserts HTTP 200, the header's shape and the description's schema of the
    /// route; returns the body.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (method_name, url) = (method.as_str().to_owned(), self.url(path));
        let mut req = self
            .app
            .anon(method, &url)
            .header("Content-Type", "application/json; charset=UTF-8")
            .header("X-Secret-Key", &self.secret);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status(), StatusCode::OK, "GameTalk answers 200 to everything");
        let tx_header = resp.headers().get("x-gt-transaction-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body: Value = resp.json().await.expect("json body");
        check_header(&body);
        crate::openapi::check_response(&method_name, &url, 200, &body);
        assert_eq!(tx_header.as_deref(), body["header"]["transactionId"].as_str(), "header and body agree");
        body
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let body = self.call(method, path, body).await;
        assert_eq!(body["header"]["resultCode"], 0, "{body}");
        assert_eq!(body["header"]["resultMessage"], "SUCCESS");
        assert_eq!(body["header"]["isSuccessful"], true);
        body
    }

    async fn fails(&self, method: Method, path: &str, body: Option<Value>, code: i64) -> Value {
        let body = self.call(method, path, body).await;
        assert_eq!(body["header"]["resultCode"], code, "{body}");
        assert_eq!(body["header"]["isSuccessful"], false);
        assert!(body["header"]["resultMessage"].as_str().is_some_and(|m| !m.is_empty() && m != "SUCCESS"));
        body
    }

    async fn channel(&self, body: Value) -> String {
        let created = self.ok(Method::POST, "/channels", Some(body)).await;
        created["result"]["id"].as_str().expect("channel id").to_owned()
    }

    async fn tag(&self, name: &str) -> i64 {
        let (status, tag) = self.app.post("/api/v1/chat/tags", json!({"name": name, "description": "d"})).await;
        assert_eq!(status, StatusCode::CREATED, "{tag}");
        tag["id"].as_i64().expect("tag id")
    }
}

const INVALID_PARAMETER: i64 = 40001;
const INVALID_SECRET_KEY: i64 = 40101;
const APPKEY_NOT_FOUND: i64 = 40401;
const CHANNEL_NOT_FOUND: i64 = 40402;
const TAG_NOT_FOUND: i64 = 40403;
const USER_NOT_FOUND: i64 = 40404;
const ALREADY_SUBSCRIBED: i64 = 40901;
const NOT_SUBSCRIBED: i64 = 40902;

fn check_header(body: &Value) {
    let h = &body["header"];
    assert!(h["transactionId"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
    assert!(h["isSuccessful"].is_boolean(), "{body}");
    assert!(h["resultCode"].is_i64(), "{body}");
    assert!(h["resultMessage"].is_string(), "{body}");
}

/// ISO 8601 with an offset, as the seed's `2023-01-01T00:00:00+09:00`.
fn is_date(v: &Value) -> bool {
    v.as_str().is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok() && (s.ends_with("+00:00")))
}

fn check_channel(c: &Value, app_key: &str) {
    assert_eq!(c["appKey"], app_key, "{c}");
    assert!(c["id"].as_str().is_some_and(|s| !s.is_empty()), "{c}");
    assert_eq!(c["type"], "PUBLIC", "{c}");
    assert!(c["name"].is_string(), "{c}");
    assert!(c["nickname"].is_string() || c["nickname"].is_null(), "{c}");
    assert!(c["autoDelete"].is_boolean(), "{c}");
    assert_eq!(c["deleted"], false, "{c}");
    assert!(c["lastMessageId"].is_i64(), "{c}");
    assert!(c["subscriberCount"].is_i64(), "{c}");
    for t in c["tagList"].as_array().expect("tagList") {
        assert!(t["id"].is_i64() && t["name"].is_string(), "{c}");
    }
    assert!(c["regUser"].is_string(), "{c}");
    assert!(is_date(&c["regDate"]), "{c}");
    assert!(c["modUser"].is_string(), "{c}");
    assert!(is_date(&c["modDate"]), "{c}");
}

fn check_paging(p: &Value, page: i64, size: i64, count: i64, total: i64) {
    let pages = (total + size - 1) / size;
    assert_eq!(
        p,
        &json!({"first": page == 0, "last": page + 1 >= pages, "numberOfElements": count, "page": page,
                "size": size, "totalElements": total, "totalPages": pages}),
    );
}

async fn player(app: &TestApp, username: &str) -> String {
    let (status, user) = app.post("/api/v1/users", json!({"username": username})).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    user["id"].as_str().expect("id").to_owned()
}

async fn gametalk_auth_and_transaction_ids(app: TestApp) {
    let gt = Gt::new(&app).await;
    // The given transaction id comes back in the header and the body.
    let resp = app
        .anon(Method::GET, &gt.url("/tags?size=10"))
        .header("X-Secret-Key", &gt.secret)
        .header("X-GT-Transaction-Id", "88a1ae42-6b1d-48c8-894e-54e97aca07fq")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.headers()["x-gt-transaction-id"], "88a1ae42-6b1d-48c8-894e-54e97aca07fq");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["header"]["transactionId"], "88a1ae42-6b1d-48c8-894e-54e97aca07fq");
    // Without one, one is made up (and differs per call).
    let a = gt.ok(Method::GET, "/tags?size=10", None).await;
    let b = gt.ok(Method::GET, "/tags?size=10", None).await;
    assert_ne!(a["header"]["transactionId"], b["header"]["transactionId"]);

    // A wrong or missing secret key, and an unknown app key: 200 with the error code, nothing done.
    for secret in [Some("wrong"), None] {
        let mut req = app.anon(Method::POST, &gt.url("/channels")).json(&json!({"name": "x"}));
        if let Some(s) = secret {
            req = req.header("X-Secret-Key", s);
        }
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.expect("json");
        check_header(&body);
        assert_eq!(body["header"]["resultCode"], INVALID_SECRET_KEY, "{body}");
    }
    let resp = app
        .anon(Method::GET, "/game-talk/v1.1/appkeys/no-such-app/channels?size=10")
        .header("X-Secret-Key", &gt.secret)
        .send()
        .await
        .expect("request");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["header"]["resultCode"], APPKEY_NOT_FOUND, "{body}");
    // Another project's secret key does not open this project.
    let (other_id, other_key) = app.other_project().await;
    let (_, other) = send(app.with_key(&other_key, Method::GET, &format!("/api/v1/projects/{other_id}"))).await;
    let other_secret = other["secretKey"].as_str().expect("secretKey").to_owned();
    let resp = app
        .anon(Method::GET, &gt.url("/channels?size=10"))
        .header("X-Secret-Key", other_secret)
        .send()
        .await
        .expect("request");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["header"]["resultCode"], INVALID_SECRET_KEY, "{body}");
    let list = gt.ok(Method::GET, "/channels?size=10", None).await;
    assert_eq!(list["pagingInfo"]["totalElements"], 0, "nothing was created: {list}");
}

async fn gametalk_channels_conform(app: TestApp) {
    let gt = Gt::new(&app).await;
    let t1 = gt.tag("notice").await;
    // Create with every field, as in the seed.
    let full = gt
        .ok(
            Method::POST,
            "/channels",
            Some(json!({"name": "lobby", "nickname": "Lobby", "tagIdList": [t1], "autoDelete": false})),
        )
        .await;
    let c = &full["result"];
    check_channel(c, &gt.app_key);
    assert_eq!(
        (c["name"].clone(), c["nickname"].clone(), c["autoDelete"].clone()),
        (json!("lobby"), json!("Lobby"), json!(false))
    );
    assert_eq!(c["tagList"], json!([{"id": t1, "name": "notice"}]));
    assert_eq!((c["subscriberCount"].clone(), c["lastMessageId"].clone()), (json!(0), json!(0)));
    let id = c["id"].as_str().expect("id").to_owned();
    assert_eq!(app.event_types("chat_channel", &id).await, ["chat.channel.created"]);

    // Create with the name only: autoDelete defaults to true, no nickname, no tags.
    let min = gt.ok(Method::POST, "/channels", Some(json!({"name": "minimal"}))).await;
    check_channel(&min["result"], &gt.app_key);
    assert_eq!(min["result"]["autoDelete"], true);
    assert!(min["result"]["nickname"].is_null());
    assert_eq!(min["result"]["tagList"], json!([]));

    // Errors: missing name, a name of blanks, an unknown tag, bad JSON. None creates anything.
    gt.fails(Method::POST, "/channels", Some(json!({"nickname": "n"})), INVALID_PARAMETER).await;
    gt.fails(Method::POST, "/channels", Some(json!({"name": "  "})), INVALID_PARAMETER).await;
    gt.fails(Method::POST, "/channels", Some(json!({"name": "x", "tagIdList": [999_999]})), TAG_NOT_FOUND).await;
    gt.fails(Method::POST, "/channels", Some(json!({"name": 5})), INVALID_PARAMETER).await;
    let list = gt.ok(Method::GET, "/channels?size=100", None).await;
    assert_eq!(list["pagingInfo"]["totalElements"], 2, "{list}");

    // Get: the full shape, modUser and modDate included.
    let got = gt.ok(Method::GET, &format!("/channels/{id}"), None).await;
    assert_eq!(got["result"], *c);
    gt.fails(Method::GET, "/channels/no-such-channel", None, CHANNEL_NOT_FOUND).await;

    // Update: each optional field alone; absent fields stay. The answer is the header alone.
    let up = gt.ok(Method::PUT, &format!("/channels/{id}"), Some(json!({"name": "lobby-2"}))).await;
    assert_eq!(up.as_object().map(|o| o.len()), Some(1), "only `header`: {up}");
    let t2 = gt.tag("event").await;
    gt.ok(Method::PUT, &format!("/channels/{id}"), Some(json!({"tagIdList": [t2, t1]}))).await;
    gt.ok(Method::PUT, &format!("/channels/{id}"), Some(json!({"autoDelete": true}))).await;
    gt.ok(Method::PUT, &format!("/channels/{id}"), Some(json!({"nickname": "L2"}))).await;
    gt.ok(Method::PUT, &format!("/channels/{id}"), Some(json!({}))).await;
    let got = gt.ok(Method::GET, &format!("/channels/{id}"), None).await;
    let r = &got["result"];
    assert_eq!(
        (r["name"].clone(), r["nickname"].clone(), r["autoDelete"].clone()),
        (json!("lobby-2"), json!("L2"), json!(true))
    );
    assert_eq!(r["tagList"], json!([{"id": t1, "name": "notice"}, {"id": t2, "name": "event"}]));
    assert_eq!(r["regDate"], c["regDate"]);
    gt.fails(Method::PUT, &format!("/channels/{id}"), Some(json!({"tagIdList": [424_242]})), TAG_NOT_FOUND).await;
    gt.fails(Method::PUT, &format!("/channels/{id}"), Some(json!({"name": ""})), INVALID_PARAMETER).await;
    gt.fails(Method::PUT, "/channels/no-such-channel", Some(json!({"name": "x"})), CHANNEL_NOT_FOUND).await;
    let unchanged = gt.ok(Method::GET, &format!("/channels/{id}"), None).await;
    assert_eq!(unchanged["result"]["tagList"], r["tagList"], "a failed update changes nothing");

    // Delete, then it is gone; deleting again says so.
    gt.ok(Method::DELETE, &format!("/channels/{id}"), None).await;
    gt.fails(Method::GET, &format!("/channels/{id}"), None, CHANNEL_NOT_FOUND).await;
    gt.fails(Method::DELETE, &format!("/channels/{id}"), None, CHANNEL_NOT_FOUND).await;
    let types = app.event_types("chat_channel", &id).await;
    assert_eq!(types.first().map(String::as_str), Some("chat.channel.created"));
    assert_eq!(types.last().map(String::as_str), Some("chat.channel.deleted"));
    assert_eq!(types.iter().filter(|t| *t == "chat.channel.updated").count(), 5, "{types:?}");
}

async fn gametalk_channel_list_filters_and_paging(app: TestApp) {
    let gt = Gt::new(&app).await;
    let (a, b, c) = (gt.tag("a").await, gt.tag("b").await, gt.tag("c").await);
    let only_a = gt.channel(json!({"name": "only-a", "tagIdList": [a]})).await;
    let a_and_b = gt.channel(json!({"name": "a-and-b", "tagIdList": [a, b]})).await;
    let only_b = gt.channel(json!({"name": "only-b", "tagIdList": [b]})).await;
    let none = gt.channel(json!({"name": "none"})).await;
    let ids = |body: &Value| -> Vec<String> {
        body["channelList"]
            .as_array()
            .expect("channelList")
            .iter()
            .map(|c| c["id"].as_str().expect("id").to_owned())
            .collect()
    };

    let all = gt.ok(Method::GET, "/channels?size=10", None).await;
    assert_eq!(ids(&all), [only_a.as_str(), a_and_b.as_str(), only_b.as_str(), none.as_str()]);
    check_paging(&all["pagingInfo"], 0, 10, 4, 4);
    for ch in all["channelList"].as_array().expect("list") {
        check_channel(ch, &gt.app_key);
    }
    // OR is the default; AND needs every tag.
    let or = gt.ok(Method::GET, &format!("/channels?size=10&tagIdList={a},{b}"), None).await;
    assert_eq!(ids(&or), [only_a.as_str(), a_and_b.as_str(), only_b.as_str()]);
    let or2 = gt.ok(Method::GET, &format!("/channels?size=10&tagType=OR&tagIdList={a}"), None).await;
    assert_eq!(ids(&or2), [only_a.as_str(), a_and_b.as_str()]);
    let and = gt.ok(Method::GET, &format!("/channels?size=10&tagType=AND&tagIdList={a},{b}"), None).await;
    assert_eq!(ids(&and), [a_and_b.as_str()]);
    check_paging(&and["pagingInfo"], 0, 10, 1, 1);
    let spaced = gt.ok(Method::GET, &format!("/channels?size=10&tagType=AND&tagIdList={a},%20{b}"), None).await;
    assert_eq!(ids(&spaced), [a_and_b.as_str()], "spaces after commas, as the seed writes them");
    let empty = gt.ok(Method::GET, &format!("/channels?size=10&tagIdList={c}"), None).await;
    assert_eq!(ids(&empty), Vec::<String>::new());

    // Paging from 0: page 1 of size 3 holds the fourth channel.
    let p1 = gt.ok(Method::GET, "/channels?page=1&size=3", None).await;
    assert_eq!(ids(&p1), [none.as_str()]);
    check_paging(&p1["pagingInfo"], 1, 3, 1, 4);
    let p0 = gt.ok(Method::GET, "/channels?size=3", None).await;
    check_paging(&p0["pagingInfo"], 0, 3, 3, 4);

    // size is mandatory and at most 100; tagType is OR or AND; tagIdList holds known ids.
    for q in
        ["", "?size=0", "?size=101", "?size=abc", "?size=10&page=-1", "?size=10&tagType=XOR", "?size=10&tagIdList=a,b"]
    {
        gt.fails(Method::GET, &format!("/channels{q}"), None, INVALID_PARAMETER).await;
    }
    gt.fails(Method::GET, "/channels?size=10&tagIdList=777777", None, TAG_NOT_FOUND).await;
    let many: Vec<i64> = (1..=101).collect();
    gt.fails(Method::POST, "/channels", Some(json!({"name": "x", "tagIdList": many})), INVALID_PARAMETER).await;
}

async fn gametalk_subscriptions_and_auto_delete(app: TestApp) {
    let gt = Gt::new(&app).await;
    let keep = gt.channel(json!({"name": "keep", "autoDelete": false})).await;
    let auto = gt.channel(json!({"name": "auto"})).await;
    let (u1, u2) = (player(&app, "sub-one").await, player(&app, "sub-two").await);

    gt.ok(Method::POST, &format!("/channels/{keep}/subscribes"), Some(json!({"userId": u1}))).await;
    gt.ok(Method::POST, &format!("/channels/{keep}/subscribes"), Some(json!({"userId": u2}))).await;
    gt.fails(Method::POST, &format!("/channels/{keep}/subscribes"), Some(json!({"userId": u1})), ALREADY_SUBSCRIBED)
        .await;
    gt.fails(Method::POST, &format!("/channels/{keep}/subscribes"), Some(json!({})), INVALID_PARAMETER).await;
    gt.fails(Method::POST, &format!("/channels/{keep}/subscribes"), Some(json!({"userId": "ghost"})), USER_NOT_FOUND)
        .await;
    gt.fails(Method::POST, "/channels/nope/subscribes", Some(json!({"userId": u1})), CHANNEL_NOT_FOUND).await;

    let subs = gt.ok(Method::GET, &format!("/channels/{keep}/subscribes?size=1"), None).await;
    check_paging(&subs["pagingInfo"], 0, 1, 1, 2);
    let user = &subs["userList"][0];
    assert_eq!(user["appKey"], gt.app_key.as_str());
    assert_eq!(user["userId"], u1.as_str());
    assert_eq!(user["nickname"], "sub-one", "the player's username until a nickname is set");
    assert!(user["languageCode"].is_null());
    assert_eq!(user["valid"], true);
    assert!(user["lastLoginDate"].is_null());
    assert!(is_date(&user["regDate"]), "{user}");
    let page1 = gt.ok(Method::GET, &format!("/channels/{keep}/subscribes?page=1&size=1"), None).await;
    assert_eq!(page1["userList"][0]["userId"], u2.as_str());
    gt.fails(Method::GET, &format!("/channels/{keep}/subscribes"), None, INVALID_PARAMETER).await;
    gt.fails(Method::GET, "/channels/nope/subscribes?size=10", None, CHANNEL_NOT_FOUND).await;
    let ch = gt.ok(Method::GET, &format!("/channels/{keep}"), None).await;
    assert_eq!(ch["result"]["subscriberCount"], 2);

    // Unsubscribe (userId in a DELETE body, as the seed sends it).
    gt.ok(Method::DELETE, &format!("/channels/{keep}/subscribes"), Some(json!({"userId": u1}))).await;
    gt.fails(Method::DELETE, &format!("/channels/{keep}/subscribes"), Some(json!({"userId": u1})), NOT_SUBSCRIBED)
        .await;
    gt.fails(Method::DELETE, &format!("/channels/{keep}/subscribes"), Some(json!({})), INVALID_PARAMETER).await;
    gt.ok(Method::DELETE, &format!("/channels/{keep}/subscribes"), Some(json!({"userId": u2}))).await;
    let ch = gt.ok(Method::GET, &format!("/channels/{keep}"), None).await;
    assert_eq!(ch["result"]["subscriberCount"], 0, "autoDelete false: the empty channel stays");

    // autoDelete: the channel goes when its last subscriber leaves, not before.
    gt.ok(Method::POST, &format!("/channels/{auto}/subscribes"), Some(json!({"userId": u1}))).await;
    gt.ok(Method::POST, &format!("/channels/{auto}/subscribes"), Some(json!({"userId": u2}))).await;
    gt.ok(Method::DELETE, &format!("/channels/{auto}/subscribes"), Some(json!({"userId": u1}))).await;
    gt.ok(Method::GET, &format!("/channels/{auto}"), None).await;
    gt.ok(Method::DELETE, &format!("/channels/{auto}/subscribes"), Some(json!({"userId": u2}))).await;
    gt.fails(Method::GET, &format!("/channels/{auto}"), None, CHANNEL_NOT_FOUND).await;
    let types = app.event_types("chat_channel", &auto).await;
    assert_eq!(
        types,
        [
            "chat.channel.created",
            "chat.subscribed",
            "chat.subscribed",
            "chat.unsubscribed",
            "chat.unsubscribed",
            "chat.channel.deleted"
        ]
    );
}

async fn gametalk_tags_conform(app: TestApp) {
    let gt = Gt::new(&app).await;
    let first = gt.tag("first").await;
    let second = gt.tag("second").await;
    let list = gt.ok(Method::GET, "/tags?size=1", None).await;
    check_paging(&list["pagingInfo"], 0, 1, 1, 2);
    let t = &list["tagList"][0];
    assert_eq!(t["appKey"], gt.app_key.as_str());
    assert_eq!(
        (t["id"].clone(), t["name"].clone(), t["description"].clone()),
        (json!(first), json!("first"), json!("d"))
    );
    for field in ["regUser", "modUser"] {
        assert!(t[field].is_string(), "{t}");
    }
    assert!(is_date(&t["regDate"]) && is_date(&t["modDate"]), "{t}");
    let p1 = gt.ok(Method::GET, "/tags?page=1&size=1", None).await;
    assert_eq!(p1["tagList"][0]["id"], second);
    let one = gt.ok(Method::GET, &format!("/tags/{first}"), None).await;
    assert_eq!(one["result"], *t);
    gt.fails(Method::GET, "/tags/123456", None, TAG_NOT_FOUND).await;
    gt.fails(Method::GET, "/tags/not-a-number", None, INVALID_PARAMETER).await;
    gt.fails(Method::GET, "/tags", None, INVALID_PARAMETER).await;
    gt.fails(Method::GET, "/tags?size=101", None, INVALID_PARAMETER).await;
}

async fn gametalk_users_conform(app: TestApp) {
    let gt = Gt::new(&app).await;
    let id = player(&app, "talker").await;
    app.post(&format!("/api/v1/users/{id}/login"), json!({})).await;
    let got = gt.ok(Method::GET, &format!("/users/{id}"), None).await;
    let u = &got["user"];
    assert_eq!(u["appKey"], gt.app_key.as_str());
    assert_eq!(u["userId"], id.as_str());
    assert_eq!(u["nickname"], "talker");
    assert!(u["languageCode"].is_null());
    assert_eq!(u["valid"], true);
    assert!(is_date(&u["lastLoginDate"]) && is_date(&u["regDate"]), "{u}");
    gt.fails(Method::GET, "/users/ghost", None, USER_NOT_FOUND).await;

    // PUT needs both fields.
    gt.fails(Method::PUT, &format!("/users/{id}"), Some(json!({"nickname": "n"})), INVALID_PARAMETER).await;
    gt.fails(Method::PUT, &format!("/users/{id}"), Some(json!({"languageCode": "ko"})), INVALID_PARAMETER).await;
    gt.fails(
        Method::PUT,
        &format!("/users/{id}"),
        Some(json!({"languageCode": "k o", "nickname": "n"})),
        INVALID_PARAMETER,
    )
    .await;
    gt.fails(Method::PUT, "/users/ghost", Some(json!({"languageCode": "ko", "nickname": "n"})), USER_NOT_FOUND).await;
    gt.ok(Method::PUT, &format!("/users/{id}"), Some(json!({"languageCode": "ko", "nickname": "Talker"}))).await;
    let got = gt.ok(Method::GET, &format!("/users/{id}"), None).await;
    assert_eq!((got["user"]["nickname"].clone(), got["user"]["languageCode"].clone()), (json!("Talker"), json!("ko")));

    // DELETE removes the chat profile and every subscription; the player stays.
    let ch1 = gt.channel(json!({"name": "one", "autoDelete": false})).await;
    let ch2 = gt.channel(json!({"name": "two"})).await;
    for ch in [&ch1, &ch2] {
        gt.ok(Method::POST, &format!("/channels/{ch}/subscribes"), Some(json!({"userId": id}))).await;
    }
    gt.ok(Method::DELETE, &format!("/users/{id}"), None).await;
    let c1 = gt.ok(Method::GET, &format!("/channels/{ch1}"), None).await;
    assert_eq!(c1["result"]["subscriberCount"], 0);
    gt.fails(Method::GET, &format!("/channels/{ch2}"), None, CHANNEL_NOT_FOUND).await;
    let got = gt.ok(Method::GET, &format!("/users/{id}"), None).await;
    assert_eq!(got["user"]["valid"], false, "{got}");
    assert!(got["user"]["languageCode"].is_null());
    let (status, _) = app.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(status, StatusCode::OK, "the player account stays");
    gt.fails(Method::DELETE, "/users/ghost", None, USER_NOT_FOUND).await;
    let types = app.event_types("user", &id).await;
    assert!(
        types.contains(&"chat.user.updated".to_string()) && types.contains(&"chat.user.deleted".to_string()),
        "{types:?}"
    );
}

async fn tags_api_validates_and_emits_events(app: TestApp) {
    let (status, tag) = app.post("/api/v1/chat/tags", json!({"name": "guild", "description": "guild chats"})).await;
    assert_eq!(status, StatusCode::CREATED, "{tag}");
    let id = tag["id"].as_i64().expect("id");
    assert_eq!((tag["name"].clone(), tag["description"].clone()), (json!("guild"), json!("guild chats")));
    let (status, body) = app.post("/api/v1/chat/tags", json!({"name": "guild"})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    for bad in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "x".repeat(101)}),
        json!({"name": "a\u{7}b"}),
        json!({"name": "x", "extra": 1}),
    ] {
        let (status, body) = app.post("/api/v1/chat/tags", bad.clone()).await;
        assert!(
            status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST,
            "{bad}: {status} {body}"
        );
    }
    let (status, up) = app.patch(&format!("/api/v1/chat/tags/{id}"), json!({"description": null})).await;
    assert_eq!(status, StatusCode::OK, "{up}");
    assert!(up["description"].is_null());
    assert_eq!(up["name"], "guild");
    let (_, list) = app.get("/api/v1/chat/tags").await;
    assert_eq!(list["total"], 1, "{list}");
    let (status, _) = app.delete(&format!("/api/v1/chat/tags/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.get(&format!("/api/v1/chat/tags/{id}")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        app.event_types("chat_tag", &id.to_string()).await,
        ["chat.tag.created", "chat.tag.updated", "chat.tag.deleted"]
    );
    // Scopes: a key without chat:write cannot create tags.
    let (_, key) = app.create_key(&["chat:read"]).await;
    let (status, body) = send(app.with_key(&key, Method::POST, "/api/v1/chat/tags").json(&json!({"name": "x"}))).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
}

async fn messages_send_edit_delete_and_rules(app: TestApp) {
    let gt = Gt::new(&app).await;
    let ch = gt.channel(json!({"name": "talk"})).await;
    let (alice, bob) = (player(&app, "alice").await, player(&app, "bob").await);
    gt.ok(Method::POST, &format!("/channels/{ch}/subscribes"), Some(json!({"userId": alice}))).await;
    let path = format!("/api/v1/chat/channels/{ch}/messages");

    let (status, m) = app.post(&path, json!({"userId": alice, "text": "hello\nworld", "data": {"emote": 3}})).await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    assert_eq!(
        (m["channelId"].clone(), m["userId"].clone(), m["text"].clone()),
        (json!(ch), json!(alice), json!("hello\nworld"))
    );
    assert_eq!(m["data"], json!({"emote": 3}));
    assert_eq!(m["deleted"], false);
    let first_id = m["id"].as_i64().expect("numeric id");
    let c = gt.ok(Method::GET, &format!("/channels/{ch}"), None).await;
    assert_eq!(c["result"]["lastMessageId"], first_id, "lastMessageId tracks messages");

    // Only subscribers send; the game server may send without a sender.
    let (status, body) = app.post(&path, json!({"userId": bob, "text": "hi"})).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "not_subscribed");
    let (status, sys) = app.post(&path, json!({"text": "server restarts in 5 minutes"})).await;
    assert_eq!(status, StatusCode::CREATED, "{sys}");
    assert!(sys["userId"].is_null());
    assert!(sys["id"].as_i64().expect("id") > first_id);

    // Length, control characters, empty text, unknown channel.
    for (body, want) in [
        (json!({"userId": alice, "text": "x".repeat(2001)}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"userId": alice, "text": "bell\u{7}"}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"userId": alice, "text": "   "}), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (status, resp) = app.post(&path, body).await;
        assert_error(status, &resp, want, "validation_error");
    }
    let (status, body) = app.post("/api/v1/chat/channels/nope/messages", json!({"text": "x"})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, ok) = app.post(&path, json!({"userId": alice, "text": "x".repeat(2000)})).await;
    assert_eq!(status, StatusCode::CREATED, "2,000 characters is the limit, inclusive: {ok}");

    // Edit by the sender (or the server); another player may not.
    let mpath = format!("{path}/{first_id}");
    let (status, body) = app.patch(&mpath, json!({"userId": bob, "text": "hijack"})).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, edited) = app.patch(&mpath, json!({"userId": alice, "text": "hello again"})).await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!((edited["text"].clone(), edited["id"].clone()), (json!("hello again"), json!(first_id)));
    assert_eq!(edited["data"], json!({"emote": 3}), "absent data stays");

    // Soft delete keeps the id in the history, without the text.
    let (status, deleted) = send(app.req(Method::DELETE, &format!("{mpath}?userId={alice}"))).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!((deleted["deleted"].clone(), deleted["text"].clone()), (json!(true), json!("")));
    let (status, body) = app.patch(&mpath, json!({"text": "back"})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (_, page) = app.get(&path).await;
    let ids: Vec<i64> =
        page["items"].as_array().expect("items").iter().map(|m| m["id"].as_i64().expect("id")).collect();
    assert!(ids.contains(&first_id), "{page}");
    assert_eq!(
        app.event_types("chat_message", &first_id.to_string()).await,
        ["chat.message.created", "chat.message.updated", "chat.message.deleted"]
    );

    // The send limit (10 per 10 s by default): alice has sent 2, so 8 more pass, then 429.
    for i in 0..8 {
        let (status, body) = app.post(&path, json!({"userId": alice, "text": format!("spam {i}")})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let resp = app
        .req(Method::POST, &path)
        .json(&json!({"userId": alice, "text": "one too many"}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = resp.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=10).contains(&wait), "{wait}");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limited");
    let (status, _) = app.post(&path, json!({"text": "the server is not limited"})).await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn history_pages_skip_and_repeat_nothing(app: TestApp) {
    let gt = Gt::new(&app).await;
    let ch = gt.channel(json!({"name": "busy"})).await;
    let path = format!("/api/v1/chat/channels/{ch}/messages");
    for i in 0..30 {
        let (status, _) = app.post(&path, json!({"text": format!("m{i}")})).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    // Page backwards while new messages keep arriving.
    let writer = {
        let (client, url, key) = (app.client.clone(), app.url(&path), app.key.clone());
        tokio::spawn(async move {
            for i in 0..30 {
                let _ =
                    client.post(&url).header("X-API-Key", &key).json(&json!({"text": format!("late{i}")})).send().await;
            }
        })
    };
    let (_, first) = app.get(&format!("{path}?limit=7")).await;
    let mut seen: Vec<i64> =
        first["items"].as_array().expect("items").iter().map(|m| m["id"].as_i64().expect("id")).collect();
    let newest = first["after"].as_str().expect("after").to_owned();
    let mut before = first["before"].as_str().map(str::to_owned);
    while let Some(cursor) = before {
        let (status, page) = app.get(&format!("{path}?limit=7&before={cursor}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(page["items"].as_array().expect("items").iter().map(|m| m["id"].as_i64().expect("id")));
        before = page["before"].as_str().map(str::to_owned);
    }
    writer.await.expect("writer");
    // Backwards, newest first: strictly decreasing, down to the first message.
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");
    let oldest_on_first_page = seen[6];
    let older: Vec<i64> = (1..oldest_on_first_page).rev().collect();
    assert_eq!(seen[7..], older[..], "every older message, once, down to the first");
    // Forwards from the newest seen: every late message, oldest first, once.
    let mut after = Some(newest);
    let mut late = Vec::new();
    while let Some(cursor) = after {
        let (_, page) = app.get(&format!("{path}?limit=4&after={cursor}")).await;
        let items = page["items"].as_array().expect("items");
        late.extend(items.iter().map(|m| m["id"].as_i64().expect("id")));
        after = if items.is_empty() { None } else { page["after"].as_str().map(str::to_owned) };
    }
    assert!(late.windows(2).all(|w| w[0] < w[1]), "{late:?}");
    let mut all: Vec<i64> = seen.iter().chain(late.iter()).copied().collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 60, "each of the 60 messages seen exactly once: {} + {}", seen.len(), late.len());
    assert_eq!(seen.len() + late.len(), 60, "no message repeated");

    for q in
        ["limit=0", "limit=101", "before=garbage", "after=1.x", "before=1.1&after=1.1", "before=-300000000000000000.1"]
    {
        // Bad query values get the code API.md gives them, naming the parameter.
        let (status, body) = app.get(&format!("{path}?{q}")).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_query");
        let param = q.split('=').next().unwrap_or_default();
        assert_eq!(body["error"]["details"][0]["field"], param, "{q}: {body}");
    }
}

async fn concurrent_subscribes_count_right(app: TestApp) {
    let gt = Gt::new(&app).await;
    let ch = gt.channel(json!({"name": "crowd"})).await;
    let mut users = Vec::new();
    for i in 0..50 {
        users.push(player(&app, &format!("crowd-{i}")).await);
    }
    let mut tasks = Vec::new();
    for u in &users {
        let req = app
            .anon(Method::POST, &gt.url(&format!("/channels/{ch}/subscribes")))
            .header("X-Secret-Key", &gt.secret)
            .json(&json!({"userId": u}));
        tasks.push(tokio::spawn(send(req)));
    }
    for t in tasks {
        let (status, body) = t.await.expect("task");
        assert_eq!((status, body["header"]["resultCode"].clone()), (StatusCode::OK, json!(0)), "{body}");
    }
    let got = gt.ok(Method::GET, &format!("/channels/{ch}"), None).await;
    assert_eq!(got["result"]["subscriberCount"], 50);
    let subs = gt.ok(Method::GET, &format!("/channels/{ch}/subscribes?size=100"), None).await;
    assert_eq!(subs["pagingInfo"]["totalElements"], 50);
}

/// Sends are written in batches (`store::batch`): a send whose write fails the whole
/// transaction (here its event reuses an event id) gets its own error, and the sends batched
/// with it are committed.
async fn a_send_that_fails_its_batch_fails_alone(app: TestApp) {
    use herald::{
        events::{EventContext, NewEvent},
        store::{StoreError, chat::NewMessage},
    };
    let gt = Gt::new(&app).await;
    let ch = gt.channel(json!({"name": "batched"})).await;
    let send = |text: String, event_id: Option<&'static str>| {
        let store = app.store.clone();
        let (project_id, channel_id) = (app.project_id.clone(), ch.clone());
        async move {
            let event = Box::new(move |m: &herald::store::chat::Message| {
                let mut e = NewEvent::about(
                    &EventContext::system(),
                    "test.sent",
                    (None, Some(&m.project_id)),
                    "message",
                    "x",
                    m,
                );
                if let Some(id) = event_id {
                    e.id = id.to_owned();
                }
                e
            });
            let message = NewMessage { project_id, channel_id, user_id: None, text, data: None, event };
            store.insert_message(message).await
        }
    };
    send("first".into(), Some("taken-event-id")).await.expect("the first send");
    let sends = (0..40).map(|i| send(format!("m{i}"), (i == 20).then_some("taken-event-id")));
    let results = futures_util::future::join_all(sends).await;
    for (i, result) in results.iter().enumerate() {
        match result {
            Err(StoreError::Db(sqlx::Error::Database(db))) if i == 20 => assert!(db.is_unique_violation(), "{db}"),
            Ok(m) if i != 20 => assert_eq!(m.text, format!("m{i}")),
            other => panic!("send {i}: {other:?}"),
        }
    }
    let (_, page) = app.get(&format!("/api/v1/chat/channels/{ch}/messages?limit=100")).await;
    assert_eq!(page["items"].as_array().expect("items").len(), 40, "the first and the 39 good sends: {page}");
}

async fn concurrent_sends_get_unique_increasing_ids(app: TestApp) {
    let gt = Gt::new(&app).await;
    let ch = gt.channel(json!({"name": "race"})).await;
    let path = format!("/api/v1/chat/channels/{ch}/messages");
    let mut tasks = Vec::new();
    for i in 0..60 {
        tasks.push(tokio::spawn(send(app.req(Method::POST, &path).json(&json!({"text": format!("r{i}")})))));
        // Sends to a missing channel, among them: sends are written in batches, and these fail alone.
        if i % 10 == 0 {
            let req = app.req(Method::POST, "/api/v1/chat/channels/missing/messages").json(&json!({"text": "lost"}));
            tasks.push(tokio::spawn(send(req)));
        }
    }
    let mut ids = Vec::new();
    let mut missing = 0;
    for t in tasks {
        let (status, m) = t.await.expect("task");
        if status == StatusCode::NOT_FOUND {
            assert_error(status, &m, StatusCode::NOT_FOUND, "not_found");
            missing += 1;
            continue;
        }
        assert_eq!(status, StatusCode::CREATED, "{m}");
        ids.push(m["id"].as_i64().expect("id"));
    }
    assert_eq!(missing, 6);
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 60, "ids are unique");
    // The history's order by (time, id) is the ids' order.
    let (_, page) = app.get(&format!("{path}?limit=100")).await;
    let listed: Vec<i64> =
        page["items"].as_array().expect("items").iter().map(|m| m["id"].as_i64().expect("id")).collect();
    let mut desc = sorted.clone();
    desc.reverse();
    assert_eq!(listed, desc);
    let c = gt.ok(Method::GET, &format!("/channels/{ch}"), None).await;
    assert_eq!(c["result"]["lastMessageId"], *sorted.last().expect("last"));
    assert_eq!(sorted, (1..=60).collect::<Vec<i64>>(), "failed sends used up no ids");
    for id in [1, 30, 60] {
        assert_eq!(app.event_types("chat_message", &id.to_string()).await, ["chat.message.created"]);
    }
}

/// Every subscriber of an auto-delete channel leaves at once: whichever leaves last (each
/// counts the others under the channel's lock) deletes the channel, exactly once.
async fn concurrent_leaves_delete_an_auto_delete_channel(app: TestApp) {
    let gt = Gt::new(&app).await;
    let ch = gt.channel(json!({"name": "party"})).await;
    let mut users = Vec::new();
    for i in 0..20 {
        let u = player(&app, &format!("party-{i}")).await;
        gt.ok(Method::POST, &format!("/channels/{ch}/subscribes"), Some(json!({"userId": u}))).await;
        users.push(u);
    }
    let mut tasks = Vec::new();
    for u in &users {
        let req = app
            .anon(Method::DELETE, &gt.url(&format!("/channels/{ch}/subscribes")))
            .header("X-Secret-Key", &gt.secret)
            .json(&json!({"userId": u}));
        tasks.push(tokio::spawn(send(req)));
    }
    for t in tasks {
        let (_, body) = t.await.expect("task");
        assert_eq!(body["header"]["resultCode"], 0, "{body}");
    }
    gt.fails(Method::GET, &format!("/channels/{ch}"), None, CHANNEL_NOT_FOUND).await;
    let types = app.event_types("chat_channel", &ch).await;
    assert_eq!(types.iter().filter(|t| *t == "chat.unsubscribed").count(), 20, "{types:?}");
    assert_eq!(types.iter().filter(|t| *t == "chat.channel.deleted").count(), 1, "{types:?}");
}

/// Updates of different fields at once: each is kept (none writes back a stale copy of the
/// others), over several rounds.
async fn concurrent_updates_of_different_fields_all_stay(app: TestApp) {
    let gt = Gt::new(&app).await;
    let tag = gt.tag("t").await;
    for round in 0..5 {
        let ch = gt.channel(json!({"name": "before", "autoDelete": true})).await;
        let bodies = [
            json!({"name": format!("name {round}")}),
            json!({"nickname": format!("nick {round}")}),
            json!({"autoDelete": false}),
            json!({"tagIdList": [tag]}),
        ];
        let mut tasks = Vec::new();
        for body in bodies {
            let req = app
                .anon(Method::PUT, &gt.url(&format!("/channels/{ch}")))
                .header("X-Secret-Key", &gt.secret)
                .json(&body);
            tasks.push(tokio::spawn(send(req)));
        }
        for t in tasks {
            let (_, body) = t.await.expect("task");
            assert_eq!(body["header"]["resultCode"], 0, "{body}");
        }
        let got = gt.ok(Method::GET, &format!("/channels/{ch}"), None).await;
        let r = &got["result"];
        assert_eq!(r["name"], format!("name {round}"), "{r}");
        assert_eq!(r["nickname"], format!("nick {round}"), "{r}");
        assert_eq!(r["autoDelete"], false, "{r}");
        assert_eq!(r["tagList"], json!([{"id": tag, "name": "t"}]), "{r}");
    }
}
