//! Test your own state machine: a small bank whose transfers must never create
//! money, run through simulated seeds with every fault on.
//!
//! `cargo run --release --example bank` runs 200 seeds; `cargo test --example
//! bank` runs the test below (20 seeds). `QUORATE_SEED=n` replays one seed.

use std::collections::BTreeMap;

use quorate::prelude::*;
use quorate::sim::workload::Operation;
use quorate::sim::{MachineTest, check_machine};
use serde::{Deserialize, Serialize};

/// Accounts and their balances. Every account starts with 100.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Bank {
    balances: BTreeMap<u8, u64>,
}

const ACCOUNTS: u8 = 4;
const OPENING_BALANCE: u64 = 100;
const TOTAL: u64 = ACCOUNTS as u64 * OPENING_BALANCE;

impl Default for Bank {
    fn default() -> Self {
        Self {
            balances: (0..ACCOUNTS)
                .map(|account| (account, OPENING_BALANCE))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum BankCmd {
    /// Moves `amount` unless the source would go negative.
    Transfer { from: u8, to: u8, amount: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum BankQuery {
    Balance(u8),
    Total,
}

impl StateMachine for Bank {
    type Command = BankCmd;
    type Query = BankQuery;
    type QueryResult = u64;
    type StateSync = LogReplaySync<Self>;

    fn signature(&self) -> UniqueId {
        UniqueId::from("example_bank_v1")
    }

    fn apply(&mut self, command: BankCmd, _ctx: &dyn ApplyContext) {
        let BankCmd::Transfer { from, to, amount } = command;
        let available = self.balances.get(&from).copied().unwrap_or(0);
        if from != to && amount <= available && self.balances.contains_key(&to) {
            *self.balances.entry(from).or_default() -= amount;
            *self.balances.entry(to).or_default() += amount;
        }
        // The machine's own invariant, on every replica after every command: a
        // panic here is a finding the simulator reports with its seed.
        let total: u64 = self.balances.values().sum();
        assert_eq!(total, TOTAL, "a transfer created or destroyed money");
    }

    fn query(&self, query: BankQuery) -> u64 {
        match query {
            BankQuery::Balance(account) => self.balances.get(&account).copied().unwrap_or(0),
            BankQuery::Total => self.balances.values().sum(),
        }
    }

    fn state_sync(&self) -> LogReplaySync<Self> {
        LogReplaySync::default()
    }
}

/// Transfers between random accounts, balance reads, and reads of the total.
fn bank_operation(rng: &mut quorate::env::Entropy, _client: u64) -> Operation<Bank> {
    let draw =
        |rng: &mut quorate::env::Entropy, below: u64| quorate::env::uniform_u64(rng, 0, below);
    match draw(rng, 10) {
        0..=5 => Operation::Command(BankCmd::Transfer {
            from: draw(rng, u64::from(ACCOUNTS)) as u8,
            to: draw(rng, u64::from(ACCOUNTS)) as u8,
            amount: draw(rng, 60),
        }),
        6..=7 => Operation::Query {
            query: BankQuery::Balance(draw(rng, u64::from(ACCOUNTS)) as u8),
            strong: true,
        },
        _ => Operation::Query {
            query: BankQuery::Total,
            strong: draw(rng, 2) == 0,
        },
    }
}

/// Runs the bank through `seeds`. Money is conserved by the assertion in
/// `apply` (on every replica, after every command); strong reads must be
/// linearizable against the bank itself, weak ones must agree per position.
fn check_bank(seeds: std::ops::Range<u64>) {
    let test = MachineTest {
        seeds,
        ..MachineTest::default()
    };
    let reports = check_machine(test, Bank::default, bank_operation);
    println!("{} seeds passed", reports.len());
}

#[cfg_attr(test, allow(dead_code))]
fn main() {
    check_bank(0..200);
}

#[test]
fn transfers_never_create_money() {
    check_bank(0..20);
}
