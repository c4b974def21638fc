//! What the SQL stores share: the order row type, the status list for riders'
//! orders, and the outbox encoding. Each dialect keeps only its own SQL.

use super::{OutboxItem, StoreError, TrackPoint};
use sqlx::FromRow;
use std::str::FromStr;
use tracker_domain::refund::RefundState;
use tracker_domain::status::ALL;
use tracker_domain::{EventBody, Order, Point, Status};

/// One row of `orders`, as both dialects return it.
#[derive(FromRow)]
pub(crate) struct OrderRow {
    id: String,
    biz_order_no: String,
    biz_type: String,
    customer_id: String,
    rider_id: Option<String>,
    rider_name: Option<String>,
    picked_up_at: Option<i64>,
    late_alert_at: Option<i64>,
    shares_revoked_at: Option<i64>,
    status: String,
    version: i64,
    status_version: i64,
    pickup_lat: f64,
    pickup_lon: f64,
    dropoff_lat: f64,
    dropoff_lon: f64,
    promised_at: Option<i64>,
    cancel_reason: Option<String>,
    cancelled_by: Option<String>,
    route: Option<String>,
    alerts: Option<String>,
    arrived_pickup_at: Option<i64>,
    arrived_dropoff_at: Option<i64>,
    recipient: Option<String>,
    sender: Option<String>,
    notes: Option<String>,
    metadata: Option<String>,
    refund: Option<String>,
    item_count: i64,
    package_count: i64,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<OrderRow> for Order {
    type Error = StoreError;
    fn try_from(r: OrderRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str, e: serde_json::Error| {
            StoreError::Corrupt(format!("order {}: {what}: {e}", r.id).into())
        };
        let route = match &r.route {
            Some(text) => Some(serde_json::from_str(text).map_err(|e| corrupt("route", e))?),
            None => None,
        };
        let alerts = match &r.alerts {
            Some(text) => serde_json::from_str(text).map_err(|e| corrupt("alerts", e))?,
            None => Default::default(),
        };
        fn json<T: serde::de::DeserializeOwned>(
            text: &Option<String>,
        ) -> Result<Option<T>, serde_json::Error> {
            text.as_deref().map(serde_json::from_str).transpose()
        }
        let recipient = json(&r.recipient).map_err(|e| corrupt("recipient", e))?;
        let sender = json(&r.sender).map_err(|e| corrupt("sender", e))?;
        let metadata = json(&r.metadata).map_err(|e| corrupt("metadata", e))?;
        let refund = json(&r.refund).map_err(|e| corrupt("refund", e))?;
        Ok(Order {
            refund,
            route,
            alerts,
            recipient,
            sender,
            metadata,
            notes: r.notes,
            item_count: r.item_count as i32,
            package_count: r.package_count as i32,
            items: None,
            packages: None,
            archived: false,
            arrived_pickup_at: r.arrived_pickup_at,
            arrived_dropoff_at: r.arrived_dropoff_at,
            status: Status::from_str(&r.status).map_err(|e| StoreError::Corrupt(e.into()))?,
            id: r.id,
            biz_order_no: r.biz_order_no,
            biz_type: r.biz_type,
            customer_id: r.customer_id,
            rider_id: r.rider_id,
            rider_name: r.rider_name,
            picked_up_at: r.picked_up_at,
            late_alert_at: r.late_alert_at,
            shares_revoked_at: r.shares_revoked_at,
            version: r.version,
            status_version: r.status_version,
            pickup: Point {
                lat: r.pickup_lat,
                lon: r.pickup_lon,
            },
            dropoff: Point {
                lat: r.dropoff_lat,
                lon: r.dropoff_lon,
            },
            promised_at: r.promised_at,
            cancel_reason: r.cancel_reason,
            cancelled_by: r.cancelled_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// The JSON-encoded columns of an order row: `route`, `alerts`, the count
/// of open alerts (what the alerts list's index looks at), `recipient`,
/// `sender`, `metadata` and `refund` (with whether it is pending, what the
/// sweep's index looks at).
pub(crate) struct JsonColumns {
    pub route: Option<String>,
    pub alerts: Option<String>,
    pub open_alerts: i32,
    pub recipient: Option<String>,
    pub sender: Option<String>,
    pub metadata: Option<String>,
    pub refund: Option<String>,
    pub refund_pending: i32,
}

impl JsonColumns {
    pub(crate) fn of(order: &Order) -> Result<Self, StoreError> {
        fn text<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
            serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.into()))
        }
        Ok(JsonColumns {
            route: order.route.as_ref().map(text).transpose()?,
            alerts: (!order.alerts.is_empty())
                .then(|| text(&order.alerts))
                .transpose()?,
            open_alerts: order.open_alerts().count() as i32,
            recipient: order.recipient.as_ref().map(text).transpose()?,
            sender: order.sender.as_ref().map(text).transpose()?,
            metadata: order.metadata.as_ref().map(text).transpose()?,
            refund: order.refund.as_ref().map(text).transpose()?,
            refund_pending: i32::from(
                order
                    .refund
                    .as_ref()
                    .is_some_and(|r| r.state == RefundState::Pending),
            ),
        })
    }
}

/// Orders whose refund waits; it matches the partial index
/// `orders_refund_pending` of migration 0010 word for word.
pub(crate) const REFUND_PENDING: &str = "refund_pending = 1";

/// Orders with open alerts, most recently changed first (`orders_alerting` of migration 0006).
pub(crate) const ALERTING: &str = "open_alerts > 0";

pub(crate) fn events_json(events: &[EventBody]) -> Result<String, StoreError> {
    serde_json::to_string(events).map_err(|e| StoreError::Corrupt(e.into()))
}

/// The SQL list of statuses that keep a rider attached, e.g. `'assigned','picked_up'`.
pub(crate) fn attached_statuses() -> String {
    ALL.iter()
        .filter(|s| s.rider_attached())
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The SQL condition of finished orders; it matches the partial index
/// `orders_finished` of migration 0008 word for word.
pub(crate) const FINISHED: &str = "status IN ('delivered', 'cancelled', 'returned')";

/// The SQL condition of orders still under way; it matches the partial index
/// `orders_active` of migration 0003 word for word, so the planner can use it.
pub(crate) const ACTIVE: &str = "status NOT IN ('delivered', 'cancelled', 'returned')";

/// An outbox row read back: its id, order and JSON-encoded events.
pub(crate) fn outbox_item(
    id: i64,
    order_id: String,
    events: &str,
) -> Result<OutboxItem, StoreError> {
    Ok(OutboxItem {
        id,
        order_id,
        events: serde_json::from_str(events)
            .map_err(|e| StoreError::Corrupt(format!("outbox row {id}: {e}").into()))?,
    })
}

/// Track points per multi-row INSERT: 8 binds each, far below both engines'
/// bind limits, and one statement instead of 256 round trips to the driver.
pub(crate) const TRACK_ROWS_PER_INSERT: usize = 256;

/// One INSERT of `points` (at most [`TRACK_ROWS_PER_INSERT`]) that skips
/// points already stored, in either dialect's placeholders.
pub(crate) fn insert_track_rows<'a, DB>(points: &'a [TrackPoint]) -> sqlx::QueryBuilder<'a, DB>
where
    DB: sqlx::Database,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    f64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<f64>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let mut q = sqlx::QueryBuilder::new(
        "INSERT INTO track_points (order_id, ts, rider_id, lat, lon, speed, heading, acc) ",
    );
    q.push_values(points, |mut row, p| {
        row.push_bind(p.order_id.as_str())
            .push_bind(p.ts)
            .push_bind(p.rider_id.as_str())
            .push_bind(p.lat)
            .push_bind(p.lon)
            .push_bind(p.speed)
            .push_bind(p.heading)
            .push_bind(p.acc);
    });
    q.push(" ON CONFLICT DO NOTHING");
    q
}

/// A page of a lookup read with `limit + 1` rows: the first `limit` orders,
/// and the cursor after the last of them when more follow.
pub(crate) fn page(
    rows: Vec<OrderRow>,
    limit: usize,
) -> Result<(Vec<Order>, Option<super::Cursor>), StoreError> {
    let more = rows.len() > limit;
    let orders = rows
        .into_iter()
        .take(limit)
        .map(Order::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let next = more.then(|| {
        let last = orders.last().expect("limit is at least 1");
        super::Cursor {
            created_at: last.created_at,
            id: last.id.clone(),
        }
    });
    Ok((orders, next))
}
