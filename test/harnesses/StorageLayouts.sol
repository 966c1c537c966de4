// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {App} from "../../contracts/registry/App.sol";
import {DomainRegistry} from "../../contracts/registry/DomainRegistry.sol";
import {KmsRegistry} from "../../contracts/registry/KmsRegistry.sol";

// Each upgradeable contract keeps its state in one ERC-7201 struct, which `forge inspect
// storageLayout` of the contract itself does not show. These harnesses put each struct at slot 0 so
// that its member layout can be inspected and compared with the committed snapshot
// (scripts/check-storage-layout, snapshots/storage/).

contract KmsRegistryLayout {
    KmsRegistry.KmsRegistryStorage internal s;
}

contract AppLayout {
    App.AppStorage internal s;
}

contract DomainRegistryLayout {
    DomainRegistry.DomainRegistryStorage internal s;
}
