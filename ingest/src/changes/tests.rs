//! The job item's rules, each against items as a run or an operator finds them.

use super::*;

fn hour(s: &str) -> Hour {
    s.parse().unwrap()
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-03-10T00:30:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn writer(run_id: &str) -> Writer<'_> {
    Writer {
        run_id,
        now: now(),
        lease_until: now().timestamp_millis() + 60_000,
    }
}

fn skip(reason: &str) -> Skip<'_> {
    Skip {
        reason,
        forever: false,
    }
}

const START: Start = Start {
    from: None,
    default_days: 3,
};

/// A job bookmarked at `bookmark`, held by `holder` (a live lease) if given.
fn job(bookmark: Option<&str>, holder: Option<&str>) -> Job {
    let mut job = Job::new("j", 3, now());
    job.job_run_bookmark_details = bookmark.map(|b| Bookmark {
        last_run_file_name: hour(b),
        status: BookmarkStatus::Ingested,
        updated_at: None,
        run_id: None,
    });
    job.lease = holder.map(|run_id| Lease {
        run_id: run_id.into(),
        expires_at: now().timestamp_millis() + 1000,
    });
    job
}

fn written<T>(decision: anyhow::Result<Decision<T>>) -> (Job, T) {
    match decision.unwrap() {
        Decision::Write(job, value) => (job, value),
        Decision::Keep(_) => panic!("expected a write"),
    }
}

fn kept<T>(decision: anyhow::Result<Decision<T>>) -> T {
    match decision.unwrap() {
        Decision::Keep(value) => value,
        Decision::Write(..) => panic!("expected no write"),
    }
}

#[test]
fn a_claim_creates_takes_over_or_finds_the_job_busy() {
    let w = writer("r1");
    let (created, answer) = written(claim(None, &w, "j", 2));
    assert_eq!(answer, Claim::Held);
    assert_eq!(
        created.baseline_day.map(|d| d.to_string()).as_deref(),
        Some("2024-03-08")
    );

    let seeded: Job = serde_json::from_str(r#"{"job_id": "j", "baseline_days": 1}"#).unwrap();
    let (claimed, _) = written(claim(Some(&seeded), &w, "j", 2));
    assert_eq!(
        claimed.baseline_day.map(|d| d.to_string()).as_deref(),
        Some("2024-03-09"),
        "pinned"
    );
    assert_eq!(claimed.lease.unwrap().run_id, "r1");

    assert_eq!(
        kept(claim(Some(&job(None, Some("r1"))), &w, "j", 2)),
        Claim::Held,
        "a lost reply"
    );
    assert!(
        matches!(kept(claim(Some(&job(None, Some("r2"))), &w, "j", 2)), Claim::Busy(l) if l.run_id == "r2")
    );
    let mut expired = job(None, Some("r2"));
    expired.lease.as_mut().unwrap().expires_at = 0;
    assert_eq!(written(claim(Some(&expired), &w, "j", 2)).1, Claim::Held);
}

#[test]
fn advancing_needs_the_lease_and_the_bookmark_the_run_saw() {
    let w = writer("r1");
    let from = Some(hour("2024-03-05-1"));
    let to = hour("2024-03-05-2");
    let mut held = job(Some("2024-03-05-1"), Some("r1"));
    held.failing_hour = Some(FailingHour {
        hour: to,
        attempts: 2,
        reason: "x".into(),
        run_id: None,
    });
    held.parked_hours.push(ParkedHour::new(
        to,
        "by hand".into(),
        now(),
        "elt skip".into(),
        0,
    ));
    let (moved, ()) = written(advance(
        Some(&held),
        &w,
        from,
        to,
        &Moved::new(BookmarkStatus::Ingested, Aside::Nothing),
    ));
    assert_eq!(moved.bookmark_hour(), Some(to));
    assert!(
        moved.failing_hour.is_none() && moved.parked_hours.is_empty(),
        "it arrived after all"
    );
    kept(advance(
        Some(&moved),
        &w,
        from,
        to,
        &Moved::new(BookmarkStatus::Ingested, Aside::Nothing),
    ));

    let other = job(Some("2024-03-05-1"), Some("r2"));
    let lost = advance(
        Some(&other),
        &w,
        from,
        to,
        &Moved::new(BookmarkStatus::Ingested, Aside::Nothing),
    );
    assert!(lost
        .err()
        .unwrap()
        .to_string()
        .contains("lost the job to run r2"));
    let moved_by_someone = job(Some("2024-03-05-4"), Some("r1"));
    assert!(advance(
        Some(&moved_by_someone),
        &w,
        from,
        to,
        &Moved::new(BookmarkStatus::Ingested, Aside::Nothing),
    )
    .is_err());

    let parked = ParkedHour::new(to, "broken".into(), now(), "run r1".into(), 3);
    let held = job(Some("2024-03-05-1"), Some("r1"));
    let (skipped, ()) = written(advance(
        Some(&held),
        &w,
        from,
        to,
        &Moved::new(BookmarkStatus::Skipped, Aside::Parked(parked.clone())),
    ));
    assert_eq!(skipped.parked_hours, [parked]);
    assert_eq!(
        skipped.job_run_bookmark_details.unwrap().status,
        BookmarkStatus::Skipped
    );
}

#[test]
fn a_failed_run_counts_once() {
    let w = writer("r1");
    let from = Some(hour("2024-03-05-1"));
    let next = hour("2024-03-05-2");
    let held = job(Some("2024-03-05-1"), Some("r1"));
    let (once, attempts) = written(count_failure(Some(&held), &w, from, next, "broken"));
    assert_eq!(attempts, 1);
    assert_eq!(
        kept(count_failure(Some(&once), &w, from, next, "broken")),
        1,
        "a lost reply"
    );
    let mut next_run = once.clone();
    next_run.lease.as_mut().unwrap().run_id = "r2".into();
    let (twice, attempts) = written(count_failure(
        Some(&next_run),
        &writer("r2"),
        from,
        next,
        "broken",
    ));
    assert_eq!(
        (attempts, twice.failing_hour.unwrap().reason.as_str()),
        (2, "broken")
    );
}

#[test]
fn queued_hours_leave_the_queue_or_are_parked_again() {
    let w = writer("r1");
    let h = hour("2024-03-01-5");
    let mut held = job(Some("2024-03-05-1"), Some("r1"));
    held.retry_hours.push(QueuedHour {
        attempts: 1,
        run_id: Some("r0".into()),
        ..QueuedHour::new(h, now(), "elt retry a".into(), None)
    });
    let (done, parked) = written(settle_queued(Some(&held), &w, h, Tried::Stored, &[]));
    assert!(!parked && done.retry_hours.is_empty());
    assert!(
        !kept(settle_queued(Some(&done), &w, h, Tried::Stored, &[])),
        "a lost reply"
    );

    let failed = Tried::Failed {
        reason: "broken",
        counts: true,
        park_after: 3,
    };
    let (again, parked) = written(settle_queued(Some(&held), &w, h, failed, &[]));
    assert!(!parked);
    assert_eq!(again.queued(h).unwrap().attempts, 2);
    assert!(
        !kept(settle_queued(Some(&again), &w, h, failed, &[])),
        "counted once per run"
    );
    let mut third = again.clone();
    third.lease.as_mut().unwrap().run_id = "r3".into();
    let (parked_job, parked) = written(settle_queued(Some(&third), &writer("r3"), h, failed, &[]));
    assert!(parked && parked_job.retry_hours.is_empty());
    assert_eq!(parked_job.parked(h).unwrap().attempts, 3);
}

#[test]
fn skip_parks_the_next_hour_at_once_and_later_hours_ahead() {
    let idle = job(Some("2024-03-05-1"), None);
    let next = hour("2024-03-05-2");
    let (skipped, change) = written(park_by_hand(
        Some(&idle),
        ("j", "elt skip a"),
        next,
        skip("known bad"),
        now(),
        START,
    ));
    assert_eq!(
        (change.action, change.bookmark_after),
        ("parked", Some(next))
    );
    assert_eq!(
        skipped.job_run_bookmark_details.as_ref().unwrap().status,
        BookmarkStatus::Skipped
    );
    assert_eq!(skipped.parked(next).unwrap().reason, "known bad");
    kept(park_by_hand(
        Some(&skipped),
        ("j", "elt skip a"),
        next,
        skip("known bad"),
        now(),
        START,
    ));

    let later = hour("2024-03-05-7");
    let (ahead, change) = written(park_by_hand(
        Some(&idle),
        ("j", "elt skip a"),
        later,
        skip("x"),
        now(),
        START,
    ));
    assert_eq!(
        (ahead.bookmark_hour(), change.bookmark_after),
        (idle.bookmark_hour(), idle.bookmark_hour())
    );
    assert!(ahead.parked(later).is_some());

    let busy = job(Some("2024-03-05-1"), Some("r9"));
    let (parked, change) = written(park_by_hand(
        Some(&busy),
        ("j", "elt skip a"),
        next,
        skip("x"),
        now(),
        START,
    ));
    assert_eq!(
        parked.bookmark_hour(),
        busy.bookmark_hour(),
        "a run holds the job"
    );
    assert!(change.detail.contains("run r9"), "{}", change.detail);
}

#[test]
fn skip_refuses_hours_done_or_parked_already() {
    let idle = job(Some("2024-03-05-1"), None);
    let next = hour("2024-03-05-2");
    let (skipped, _) = written(park_by_hand(
        Some(&idle),
        ("j", "elt skip a"),
        next,
        skip("x"),
        now(),
        START,
    ));
    let behind = park_by_hand(
        Some(&idle),
        ("j", "elt skip a"),
        hour("2024-03-05-0"),
        skip("x"),
        now(),
        START,
    );
    assert!(behind
        .err()
        .unwrap()
        .to_string()
        .contains("behind the bookmark"));
    let older = skipped.clone();
    assert!(park_by_hand(
        Some(&older),
        ("j", "elt skip b"),
        next,
        skip("x"),
        now(),
        START
    )
    .err()
    .unwrap()
    .to_string()
    .contains("parked already"));
    assert!(
        park_by_hand(None, ("j", "elt skip a"), next, skip("x"), now(), START)
            .err()
            .unwrap()
            .to_string()
            .contains("does not exist")
    );
}

#[test]
fn retry_queues_a_parked_hour_behind_and_unparks_one_ahead() {
    let mut parked = job(Some("2024-03-05-5"), None);
    for (h, by) in [("2024-03-05-2", "run r1"), ("2024-03-05-9", "elt skip")] {
        parked
            .parked_hours
            .push(ParkedHour::new(hour(h), "x".into(), now(), by.into(), 0));
    }
    let (queued, change) = written(requeue(
        Some(&parked),
        ("j", "elt retry a"),
        hour("2024-03-05-2"),
        now(),
        START,
    ));
    assert_eq!(change.action, "queued");
    assert!(
        queued.parked(hour("2024-03-05-2")).is_none()
            && queued.queued(hour("2024-03-05-2")).is_some()
    );
    assert_eq!(
        kept(requeue(
            Some(&queued),
            ("j", "elt retry a"),
            hour("2024-03-05-2"),
            now(),
            START
        ))
        .action,
        "queued",
        "a lost reply"
    );
    assert!(requeue(
        Some(&queued),
        ("j", "elt retry b"),
        hour("2024-03-05-2"),
        now(),
        START
    )
    .err()
    .unwrap()
    .to_string()
    .contains("queued already"));

    let (unparked, change) = written(requeue(
        Some(&parked),
        ("j", "elt retry a"),
        hour("2024-03-05-9"),
        now(),
        START,
    ));
    assert_eq!(change.action, "unparked");
    assert!(unparked.retry_hours.is_empty() && unparked.parked(hour("2024-03-05-9")).is_none());

    let error = requeue(
        Some(&parked),
        ("j", "elt retry a"),
        hour("2024-03-05-3"),
        now(),
        START,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        error.contains("not parked (parked: 2024-03-05-2, 2024-03-05-9)"),
        "{error}"
    );
    assert!(error.contains("--force"), "{error}");
}

#[test]
fn release_gives_up_only_the_runs_own_lease() {
    let (released, ()) = written(release(Some(&job(None, Some("r1"))), "r1"));
    assert!(released.lease.is_none());
    kept(release(Some(&job(None, Some("r2"))), "r1"));
    kept(release(Some(&released), "r1"));
    kept(release(None, "r1"));
}

#[test]
fn the_bookmark_moves_past_an_hour_it_queues_and_notes_the_sources_that_lag() {
    let w = writer("r1");
    let (from, to) = (Some(hour("2024-03-05-1")), hour("2024-03-05-2"));
    let held = job(Some("2024-03-05-1"), Some("r1"));
    let entry = QueuedHour::new(to, now(), "run r1".into(), Some("HTTP 503".into()));
    let late = LateSource {
        hour: to,
        source: "mirror".into(),
        since: now(),
        reason: "404".into(),
        tries: 0,
    };
    let moved = Moved::new(BookmarkStatus::Queued, Aside::Queued(entry.clone()))
        .late(vec![late.clone(), late.clone()]);
    let (queued, ()) = written(advance(Some(&held), &w, from, to, &moved));
    assert_eq!(queued.bookmark_hour(), Some(to));
    assert_eq!(queued.retry_hours, [entry]);
    assert_eq!(
        queued.late_sources,
        std::slice::from_ref(&late),
        "each hour and source once"
    );
    kept(advance(Some(&queued), &w, from, to, &moved));

    let again = LateTry::Again("still 404".into());
    let (tried, ()) = written(settle_late(Some(&queued), &w, to, "mirror", &again));
    assert_eq!(
        (
            tried.late_sources[0].tries,
            tried.late_sources[0].reason.as_str()
        ),
        (1, "still 404")
    );
    let (settled, ()) = written(settle_late(
        Some(&tried),
        &w,
        to,
        "mirror",
        &LateTry::Settled,
    ));
    assert!(settled.late_sources.is_empty());
    kept(settle_late(
        Some(&settled),
        &w,
        to,
        "mirror",
        &LateTry::Settled,
    ));
}

#[test]
fn a_queued_hour_counts_only_failures_that_are_its_own() {
    let h = hour("2024-03-01-5");
    let mut held = job(Some("2024-03-05-1"), Some("r1"));
    held.retry_hours.push(QueuedHour::new(
        h,
        now(),
        "run r0".into(),
        Some("HTTP 503".into()),
    ));
    let mut queued = held;
    for run in ["r1", "r2", "r3", "r4", "r5"] {
        queued.lease.as_mut().unwrap().run_id = run.into();
        let outage = Tried::Failed {
            reason: "HTTP 503",
            counts: false,
            park_after: 2,
        };
        let (after, parked) = written(settle_queued(Some(&queued), &writer(run), h, outage, &[]));
        assert!(!parked);
        queued = after;
    }
    let entry = queued.queued(h).unwrap();
    assert_eq!(
        (entry.attempts, entry.tries),
        (0, 5),
        "tried five times, never counted"
    );
    queued.lease.as_mut().unwrap().run_id = "r6".into();
    let broken = Tried::Failed {
        reason: "not gzip",
        counts: true,
        park_after: 1,
    };
    let (parked_job, parked) = written(settle_queued(Some(&queued), &writer("r6"), h, broken, &[]));
    assert!(parked && parked_job.retry_hours.is_empty());
    let entry = parked_job.parked(h).unwrap();
    assert_eq!(
        (entry.attempts, entry.next_try()),
        (1, Some(now() + chrono::Duration::hours(1)))
    );
}

#[test]
fn a_parked_hour_tried_again_is_kept_with_its_history_or_let_go() {
    let h = hour("2024-03-01-5");
    let mut held = job(Some("2024-03-05-1"), Some("r1"));
    held.parked_hours
        .push(ParkedHour::new(h, "404".into(), now(), "run r0".into(), 3));
    let w = writer("r1");
    let failed = Tried::Failed {
        reason: "still 404",
        counts: false,
        park_after: 0,
    };
    let (tried, ()) = written(settle_parked(Some(&held), &w, h, failed, &[]));
    let entry = tried.parked(h).unwrap();
    assert_eq!((entry.tries, entry.history.len()), (1, 1));
    assert_eq!(entry.history[0].by, "run r1");
    assert_eq!(entry.next_try(), Some(now() + chrono::Duration::hours(6)));
    kept(settle_parked(Some(&tried), &w, h, failed, &[]));
    let (arrived, ()) = written(settle_parked(Some(&tried), &w, h, Tried::Stored, &[]));
    assert!(arrived.parked_hours.is_empty());
    kept(settle_parked(Some(&arrived), &w, h, Tried::Stored, &[]));
}

#[test]
fn skip_forever_parks_for_good_even_an_hour_parked_already() {
    let idle = job(Some("2024-03-05-1"), None);
    let later = hour("2024-03-05-7");
    let (parked, _) = written(park_by_hand(
        Some(&idle),
        ("j", "elt skip a"),
        later,
        skip("x"),
        now(),
        START,
    ));
    assert!(parked.parked(later).unwrap().next_try().is_some());
    let forever = Skip {
        reason: "lost",
        forever: true,
    };
    let (for_good, change) = written(park_by_hand(
        Some(&parked),
        ("j", "elt skip b"),
        later,
        forever,
        now(),
        START,
    ));
    assert_eq!(change.action, "parked_for_good");
    let entry = for_good.parked(later).unwrap();
    assert!(entry.forever && entry.next_try().is_none());
    assert!(entry.reason.starts_with("lost (parked"), "{}", entry.reason);
    let twice = park_by_hand(
        Some(&for_good),
        ("j", "elt skip c"),
        later,
        forever,
        now(),
        START,
    );
    assert!(twice
        .err()
        .unwrap()
        .to_string()
        .contains("parked for good already"));
    let (fresh, _) = written(park_by_hand(
        Some(&idle),
        ("j", "elt skip d"),
        later,
        forever,
        now(),
        START,
    ));
    assert!(fresh.parked(later).unwrap().forever);
    // `elt retry` takes even an hour parked for good back.
    let (back, change) = written(requeue(
        Some(&for_good),
        ("j", "elt retry e"),
        later,
        now(),
        START,
    ));
    assert_eq!(change.action, "unparked");
    assert!(back.parked(later).is_none());
}

#[test]
fn retry_refuses_gharchive_s_known_gaps() {
    let mut parked = job(Some("2024-03-05-5"), None);
    let gap = hour("2016-10-21-18");
    parked
        .parked_hours
        .push(ParkedHour::new(gap, "x".into(), now(), "run r".into(), 3));
    let error = requeue(Some(&parked), ("j", "elt retry a"), gap, now(), START)
        .err()
        .unwrap();
    assert!(error.to_string().contains("lost for good"), "{error}");
}
