-- Networks are data: any number of EVM networks (AIAPI_EVM_CHAINS) and TRON besides Ethereum
-- and Bitcoin. Deposits were already keyed by network; addresses are now keyed by the account
-- key that derives them (one coin-60 address serves every EVM network), heads carry the
-- `finalized` block (confirmations needed, as the customer sees them), and a deposit keeps the
-- decimals of the token it moved (USDT and USDC have 6 almost everywhere, not everywhere).
ALTER TABLE addresses DROP CONSTRAINT addresses_network_check;
ALTER TABLE addresses RENAME COLUMN network TO keychain;
UPDATE addresses SET keychain = 'evm' WHERE keychain = 'ethereum';
ALTER TABLE addresses ADD CONSTRAINT addresses_keychain_check
    CHECK (keychain IN ('evm', 'tron', 'bitcoin'));

ALTER TABLE deposits DROP CONSTRAINT deposits_asset_check;
ALTER TABLE deposits ADD CONSTRAINT deposits_asset_check
    CHECK (asset IN ('USDT', 'USDC', 'ETH', 'BTC'));
ALTER TABLE deposits ADD COLUMN decimals smallint CHECK (decimals BETWEEN 0 AND 36);
CREATE INDEX deposits_by_network_asset ON deposits (network, asset, state);

ALTER TABLE chain_heads DROP CONSTRAINT chain_heads_network_check;
ALTER TABLE chain_heads ADD COLUMN finalized bigint;
