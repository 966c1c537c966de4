// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IDomainRegistry} from "../../contracts/interfaces/IDomainRegistry.sol";
import {App} from "../../contracts/registry/App.sol";
import {DomainRegistry} from "../../contracts/registry/DomainRegistry.sol";
import {CovenantFixture} from "../utils/CovenantFixture.sol";

/// Attack: squat a domain. Create an app, claim someone else's domain first, freeze the app so that
/// nobody but a governance vote can undo it. In wave 1 this locked the domain; now it locks nothing.
contract DomainSquattingTest is CovenantFixture {
    string internal constant VICTIM_DOMAIN = "shop.example.com";

    function test_DomainSquattingFails() public {
        address squatter = makeAddr("squatter");
        App squat = App(registry.createApp(squatter, _appInit()));
        App victim = _createApp();

        // The squatter claims first and freezes its app.
        vm.startPrank(squatter);
        domains.claimDomain(VICTIM_DOMAIN, address(squat));
        squat.freeze();
        vm.stopPrank();

        // The rightful app still claims the name; no claim blocks another.
        vm.prank(appOwner);
        domains.claimDomain(VICTIM_DOMAIN, address(victim));
        assertTrue(domains.isClaimed(VICTIM_DOMAIN, address(victim)));
        assertTrue(domains.isClaimed(VICTIM_DOMAIN, address(squat)));

        // The squatter cannot remove the victim's claim.
        vm.prank(squatter);
        vm.expectRevert(
            abi.encodeWithSelector(
                IDomainRegistry.DomainRegistryNotAppOwner.selector, address(victim), squatter
            )
        );
        domains.releaseClaim(VICTIM_DOMAIN, address(victim));

        // Which claim counts is proven by DNS (`_covenant.<domain>` TXT); governance may still
        // clear the squatter's claim, frozen app or not.
        _asTimelock(
            address(domains), abi.encodeCall(DomainRegistry.releaseClaim, (VICTIM_DOMAIN, address(squat)))
        );
        assertFalse(domains.isClaimed(VICTIM_DOMAIN, address(squat)));
        assertTrue(domains.isClaimed(VICTIM_DOMAIN, address(victim)));
    }
}
