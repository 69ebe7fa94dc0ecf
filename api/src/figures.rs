//! The figures `/metrics` reads from the database, cached in the state (so the state needs the type, and
//! the route the reading).

use payouts_store::claims::count_by_status;
use payouts_store::cursor::read_cursor;
use payouts_store::incidents::open_counts;
use payouts_store::stalls::read_stall;
use payouts_store::webhooks::endpoint_summaries;
use payouts_store::{AsyncPgConnection, ClaimStatus, IncidentKind, StoreError};

/// Claims per status, the indexer cursor, webhook endpoints, open incidents per kind, the indexer's stall.
#[derive(Debug, Clone)]
pub(crate) struct DbFigures {
    pub(crate) counts: Vec<(ClaimStatus, i64)>,
    pub(crate) cursor: Option<payouts_store::cursor::Cursor>,
    pub(crate) endpoints: Vec<payouts_store::webhooks::EndpointSummary>,
    pub(crate) incidents: Vec<(IncidentKind, i64)>,
    pub(crate) stall: Option<payouts_store::stalls::Stall>,
}

impl DbFigures {
    /// Reads them for indexer stream `stream`.
    pub(crate) async fn read(
        conn: &mut AsyncPgConnection,
        stream: &str,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            counts: count_by_status(conn).await?,
            cursor: read_cursor(conn, stream).await?,
            endpoints: endpoint_summaries(conn).await?,
            incidents: open_counts(conn).await?,
            stall: read_stall(conn, stream).await?,
        })
    }
}
