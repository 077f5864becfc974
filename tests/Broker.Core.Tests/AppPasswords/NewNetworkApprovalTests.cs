using Broker.Core.AppPasswords;
using Broker.Testing;

namespace Broker.Core.Tests.AppPasswords;

/// <summary>New-network approval against a real redis-server.</summary>
public sealed class NewNetworkApprovalTests(RedisFixture redis) : AppPasswordStoreBase, IClassFixture<RedisFixture>
{
    protected override string RedisConfiguration => redis.Server.Configuration;

    private static ValidationContext From(string? ip) => new("imap", ip, "\"name\" \"Thunderbird\"");

    [Fact]
    public async Task UseFromAnUnapprovedNetwork_IsHeldUntilTheOwnerApproves()
    {
        await Store.SetNewNetworkApprovalAsync(User, true);
        var issued = await Store.IssueAsync(User, "Laptop", ["imap"], null, approvedFromIp: "10.1.1.5");

        var home = await Store.ValidateAsync(User, issued.Secret, From("10.1.1.77"));
        var first = await Store.ValidateAsync(User, issued.Secret, From("10.2.2.2"));
        var again = await Store.ValidateAsync(User, issued.Secret, From("10.2.2.3"));

        Assert.Equal(ValidationResult.Allowed, home.Result);
        Assert.Equal(ValidationResult.ApprovalRequired, first.Result);
        Assert.True(first.FirstUseFromNetwork);
        Assert.Equal(ValidationResult.ApprovalRequired, again.Result);
        Assert.False(again.FirstUseFromNetwork);
        var listed = Assert.Single(await Store.ListAsync(User));
        Assert.Equal(["10.2.2.0/24"], listed.PendingNetworks);
        Assert.Equal(["10.1.1.0/24"], listed.Networks);

        Assert.Equal(NetworkApproval.Approved, await Store.ApproveNetworkAsync(User, issued.AppPassword.Id, "10.2.2.0/24"));

        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, From("10.2.2.2"))).Result);
        listed = Assert.Single(await Store.ListAsync(User));
        Assert.Empty(listed.PendingNetworks);
        Assert.Equal(["10.1.1.0/24", "10.2.2.0/24"], listed.Networks);
        Assert.Equal(NetworkApproval.NotPending, await Store.ApproveNetworkAsync(User, issued.AppPassword.Id, "10.9.9.0/24"));
    }

    [Fact]
    public async Task WrongPasswordFromANewNetwork_IsADenyNotAPendingApproval()
    {
        await Store.SetNewNetworkApprovalAsync(User, true);
        await Store.IssueAsync(User, "Laptop", ["imap"], null, approvedFromIp: "10.1.1.5");

        var outcome = await Store.ValidateAsync(User, AppPasswordFormat.Generate(), From("10.3.3.3"));

        Assert.Equal(DenyReason.WrongPassword, outcome.Reason);
        Assert.Empty(Assert.Single(await Store.ListAsync(User)).PendingNetworks);
    }

    [Fact]
    public async Task WithoutAnApprovedNetwork_FirstUseIsTrusted_ThenNewNetworksNeedApproval()
    {
        await Store.SetNewNetworkApprovalAsync(User, true);
        var issued = await Store.IssueAsync(User, "Phone", ["imap"], null);

        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, From("10.4.4.4"))).Result);
        Assert.Equal(ValidationResult.ApprovalRequired, (await Store.ValidateAsync(User, issued.Secret, From("10.5.5.5"))).Result);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("not-an-address")]
    public async Task ApprovalRequired_NoClientAddress_IsDeniedAndRecordsNothing(string? remoteIp)
    {
        await Store.SetNewNetworkApprovalAsync(User, true);
        var issued = await Store.IssueAsync(User, "Laptop", ["imap"], null, approvedFromIp: "10.1.1.5");

        var outcome = await Store.ValidateAsync(User, issued.Secret, From(remoteIp));

        Assert.Equal(ValidationResult.Denied, outcome.Result);
        Assert.Equal(DenyReason.NoClientAddress, outcome.Reason);
        Assert.Equal(issued.AppPassword.Id, outcome.CredentialId);
        var listed = Assert.Single(await Store.ListAsync(User));
        Assert.Null(listed.LastUsed);
        Assert.Empty(listed.PendingNetworks);
    }

    [Fact]
    public async Task ApprovalRequired_NoClientAddress_IsDeniedEvenBeforeAnyNetworkIsKnown()
    {
        await Store.SetNewNetworkApprovalAsync(User, true);
        var issued = await Store.IssueAsync(User, "Phone", ["imap"], null);

        Assert.Equal(DenyReason.NoClientAddress, (await Store.ValidateAsync(User, issued.Secret, From(null))).Reason);
        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, From("10.4.4.4"))).Result);
    }

    [Fact]
    public async Task ApprovalOff_NoClientAddress_IsAllowed()
    {
        var issued = await Store.IssueAsync(User, "Phone", ["imap"], null, approvedFromIp: "10.6.6.6");

        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, From(null))).Result);
    }

    [Fact]
    public async Task ApprovalOff_NewNetworksAreJustRecorded()
    {
        Assert.False(await Store.RequiresNewNetworkApprovalAsync(User));
        var issued = await Store.IssueAsync(User, "Phone", ["imap"], null, approvedFromIp: "10.6.6.6");

        var outcome = await Store.ValidateAsync(User, issued.Secret, From("10.7.7.7"));

        Assert.Equal(ValidationResult.Allowed, outcome.Result);
        Assert.True(outcome.FirstUseFromNetwork);
        Assert.Equal(["10.6.6.0/24", "10.7.7.0/24"], Assert.Single(await Store.ListAsync(User)).Networks);
    }

    [Fact]
    public async Task PerUserSetting_OverridesTheDefault()
    {
        await Store.SetNewNetworkApprovalAsync(User, true);
        Assert.True(await Store.RequiresNewNetworkApprovalAsync(User));
        await Store.SetNewNetworkApprovalAsync(User, null);
        Assert.False(await Store.RequiresNewNetworkApprovalAsync(User));
    }
}

/// <summary>Per-app-password allowed networks against a real redis-server.</summary>
public sealed class AllowedNetworksTests(RedisFixture redis) : AppPasswordStoreBase, IClassFixture<RedisFixture>
{
    protected override string RedisConfiguration => redis.Server.Configuration;

    [Fact]
    public async Task AllowedNetworks_LimitWhereTheAppPasswordWorks_UntilCleared()
    {
        var issued = await Store.IssueAsync(User, "Office PC", ["imap"], null);

        var limited = await Store.SetAllowedNetworksAsync(User, issued.AppPassword.Id, ["10.20.0.0/16", "2001:db8::/32"]);

        Assert.Equal(["10.20.0.0/16", "2001:db8::/32"], limited.AllowedNetworks);
        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, new("imap", "10.20.7.7", null))).Result);
        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, new("imap", "2001:db8:5::1", null))).Result);
        Assert.Equal(DenyReason.NetworkNotAllowed, (await Store.ValidateAsync(User, issued.Secret, new("imap", "10.21.0.1", null))).Reason);
        Assert.Equal(DenyReason.NetworkNotAllowed, (await Store.ValidateAsync(User, issued.Secret, new("imap", null, null))).Reason);

        await Store.SetAllowedNetworksAsync(User, issued.AppPassword.Id, []);
        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, new("imap", "10.21.0.1", null))).Result);
    }

    [Fact]
    public async Task AllowedNetworks_BadEntry_IsRefusedWithAReason()
    {
        var issued = await Store.IssueAsync(User, "Office PC", ["imap"], null);

        var ex = await Assert.ThrowsAsync<AppPasswordException>(() => Store.SetAllowedNetworksAsync(User, issued.AppPassword.Id, ["10.0.0.0/40"]));

        Assert.Contains("10.0.0.0/40", ex.Message, StringComparison.Ordinal);
    }
}
