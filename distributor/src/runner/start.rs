//! Start-up of a distributor process: validate the configuration, load the treasury keys, read the node's
//! protocol limits (gas cap, validity period, fees), check every configured gas per transfer fits, register
//! the keys in the store's key pool and build the [`Shared`] state the lanes will use.

use std::sync::Arc;
use std::time::Duration;

use payouts_store::keys::register_keys;
use payouts_store::PgPool;
use tokio::sync::watch;

use crate::chain::Chain;
use crate::config::DistributorConfig;
use crate::keyfile::load_keys;
use crate::metrics::DistributorMetrics;
use crate::plan::Limits;
use crate::rpc::{RpcEndpointConfig, RpcPool};
use crate::shared::Shared;

use super::{Distributor, DistributorError};

impl Distributor {
    /// [`Distributor::with_endpoints`] with one endpoint at `rpc_url`.
    pub async fn new(
        pool: PgPool,
        cfg: DistributorConfig,
        rpc_url: &str,
        metrics: Arc<DistributorMetrics>,
    ) -> Result<Self, DistributorError> {
        Self::with_endpoints(pool, cfg, &[RpcEndpointConfig::new(rpc_url)], metrics).await
    }

    /// Loads the keys, registers them in the key pool, and reads the node's gas cap, over the RPC endpoint
    /// pool `endpoints` ([`crate::rpc`]).
    pub async fn with_endpoints(
        pool: PgPool,
        cfg: DistributorConfig,
        endpoints: &[RpcEndpointConfig],
        metrics: Arc<DistributorMetrics>,
    ) -> Result<Self, DistributorError> {
        cfg.validate().map_err(DistributorError::Config)?;
        let keys = load_keys(&cfg.key_files, cfg.keys_env.as_deref())?;
        let treasury = keys[0].account_id.clone();
        let rpc =
            Arc::new(RpcPool::new(endpoints).map_err(|e| DistributorError::Config(e.to_string()))?);
        metrics.set_rpc(rpc.clone());
        let chain = Chain::with_pool(rpc, Duration::from_millis(cfg.rpc_timeout_ms));
        let protocol = chain.protocol_limits().await?;
        let max_tx_gas = protocol.max_tx_gas;
        let limits = Limits {
            max_transfers_per_tx: cfg.max_transfers_per_tx,
            gas_per_transfer: cfg.gas_per_transfer(),
            max_tx_gas,
        };
        if limits.transfers_per_tx() == 0 {
            return Err(DistributorError::Config(format!(
                "distributor.gas_per_transfer_tgas: {} Tgas does not fit the node's {} Tgas per transaction",
                cfg.gas_per_transfer_tgas,
                max_tx_gas / crate::config::TGAS
            )));
        }
        for (token, tgas) in &cfg.gas_per_transfer_tgas_by_token {
            if limits
                .with_gas(cfg.gas_per_transfer_for(token))
                .transfers_per_tx()
                == 0
            {
                return Err(DistributorError::Config(format!(
                    "distributor.gas_per_transfer_tgas_by_token.{token}: {tgas} Tgas does not fit the node's {} Tgas per transaction",
                    max_tx_gas / crate::config::TGAS
                )));
            }
        }
        let pks: Vec<String> = keys.iter().map(|k| k.public_key.to_string()).collect();
        {
            let mut conn = payouts_store::get(&pool).await?;
            register_keys(&mut conn, treasury.as_str(), &pks).await?;
        }
        let owner = cfg
            .instance_id
            .clone()
            .unwrap_or_else(|| payouts_store::owner::process_owner("distributor"));
        let (head_tx, head) = watch::channel(None);
        let shared = Arc::new(Shared::new(
            pool, chain, cfg, owner, limits, protocol, metrics, treasury, head,
        ));
        Ok(Self {
            shared,
            keys,
            head_tx,
        })
    }
}
