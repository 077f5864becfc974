using Broker.Core.AppPasswords;

namespace Broker.Core.Tests.AppPasswords;

public sealed class AppPasswordScopesTests
{
    [Theory]
    [InlineData("imap", "imap")]
    [InlineData("IMAP", "imap")]
    [InlineData("pop3", "pop3")]
    [InlineData("smtp", "submission")]
    [InlineData("submission", "submission")]
    [InlineData("managesieve", "sieve")]
    public void TryFromService_MapsMailServerServiceNames(string service, string scope)
    {
        Assert.True(AppPasswordScopes.TryFromService(service, out var parsed));
        Assert.Equal(scope, parsed);
    }

    [Theory]
    [InlineData("")]
    [InlineData(null)]
    [InlineData("ssh")]
    [InlineData("imap,pop3")]
    public void TryFromService_RejectsUnknownServices(string? service)
    {
        Assert.False(AppPasswordScopes.TryFromService(service, out _));
    }

    [Fact]
    public void TryParseList_DeduplicatesAliasesAndRequiresOne()
    {
        Assert.True(AppPasswordScopes.TryParseList(["smtp", "submission", "imap"], out var scopes, out _));
        Assert.Equal(["imap", "submission"], scopes);

        Assert.False(AppPasswordScopes.TryParseList([], out _, out var empty));
        Assert.Contains("At least one", empty, StringComparison.Ordinal);
        Assert.False(AppPasswordScopes.TryParseList(["imap", "telnet"], out _, out var unknown));
        Assert.Contains("telnet", unknown, StringComparison.Ordinal);
    }
}
