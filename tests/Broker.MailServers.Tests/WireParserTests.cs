using System.Text;
using Broker.MailServers.Tests.Infrastructure;
using Broker.Validation.Dovecot;
using Broker.Validation.MailServers;
using Broker.Validation.Nginx;

namespace Broker.MailServers.Tests;

/// <summary>Unit tests of the parsers that read mail-server input: total, bounded, never throwing.</summary>
public sealed class WireParserTests
{
    [Theory]
    [InlineData("127.0.0.1:143", "127.0.0.1", 143)]
    [InlineData("[::1]:993", "::1", 993)]
    [InlineData("192.0.2.1", "192.0.2.1", 0)]
    [InlineData("2001:db8::1", "2001:db8::1", 0)]
    public void TryParseAddress_ValidForms_Parsed(string value, string ip, int port)
    {
        Assert.True(WireParsers.TryParseAddress(value, out var address, out var parsedPort));
        Assert.Equal(ip, address.ToString());
        Assert.Equal(port, parsedPort);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("localhost:143")]
    [InlineData("127.0.0.1:99999")]
    [InlineData("1.2.3.4:5:6")]
    [InlineData("[::1]:x")]
    public void TryParseAddress_Garbage_False(string? value) =>
        Assert.False(WireParsers.TryParseAddress(value, out _, out _));

    [Fact]
    public void TryParseForm_DovecotGrantBody_Decoded()
    {
        Assert.True(WireParsers.TryParseForm("grant_type=password&username=al%2Bice%40example.com&password=a+b%26c&client_id=dovecot", out var form));

        Assert.Equal("password", form["grant_type"]);
        Assert.Equal("al+ice@example.com", form["username"]);
        Assert.Equal("a b&c", form["password"]);
        Assert.Equal("dovecot", form["client_id"]);
    }

    [Theory]
    [InlineData("a=1&a=2")]
    [InlineData("a=%G1")]
    [InlineData("a=%4")]
    [InlineData("a=%FF%FE")]
    [InlineData("=1")]
    public void TryParseForm_AmbiguousOrBroken_False(string body) =>
        Assert.False(WireParsers.TryParseForm(body, out _));

    [Fact]
    public void TryParseForm_TooManyFieldsOrTooLong_False()
    {
        Assert.False(WireParsers.TryParseForm(string.Join('&', Enumerable.Range(0, 40).Select(i => $"k{i}=v")), out _));
        Assert.False(WireParsers.TryParseForm("token=" + new string('x', 5000), out _));
        Assert.True(WireParsers.TryParseForm(string.Empty, out var empty));
        Assert.Empty(empty);
    }

    [Fact]
    public void TryPercentDecode_NginxEscapedPassword_Decoded()
    {
        Assert.True(WireParsers.TryPercentDecode("p%25ss%20w+rd%C3%A9", plusIsSpace: false, out var decoded));
        Assert.Equal("p%ss w+rdé", decoded);
    }

    [Fact]
    public void TryParseBasic_UserAndSecret_Parsed()
    {
        var header = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("dovecot:bk_key:with:colons"));

        Assert.True(WireParsers.TryParseBasic(header, out var user, out var secret));
        Assert.Equal("dovecot", user);
        Assert.Equal("bk_key:with:colons", secret);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Bearer abc")]
    [InlineData("Basic !!!")]
    [InlineData("Basic bm9jb2xvbg==")]
    public void TryParseBasic_Garbage_False(string? header) =>
        Assert.False(WireParsers.TryParseBasic(header, out _, out _));

    [Fact]
    public void NginxAuthRequest_TypicalImapLogin_Parsed()
    {
        var headers = new Dictionary<string, string>
        {
            ["Auth-Method"] = "plain",
            ["Auth-User"] = "alice%40example.com",
            ["Auth-Pass"] = "abcd-efgh%25",
            ["Auth-Protocol"] = "IMAP",
            ["Auth-Login-Attempt"] = "2",
            ["Client-IP"] = "192.0.2.7",
        };

        Assert.True(NginxAuthRequest.TryParse(headers.GetValueOrDefault, out var request, out _));

        Assert.Equal("alice@example.com", request.User);
        Assert.Equal("abcd-efgh%", request.Password);
        Assert.Equal("imap", request.Protocol);
        Assert.Equal(2, request.Attempt);
        Assert.Equal("192.0.2.7", request.ClientIp!.ToString());
    }

    [Theory]
    [InlineData("Auth-Protocol", "nntp")]
    [InlineData("Auth-Login-Attempt", "-1")]
    [InlineData("Auth-Login-Attempt", "99999999999")]
    [InlineData("Client-IP", "not-an-ip")]
    [InlineData("Auth-User", "")]
    [InlineData("Auth-Pass", "%zz")]
    [InlineData("Auth-Method", null)]
    public void NginxAuthRequest_BadHeader_FalseWithReason(string name, string? value)
    {
        var headers = new Dictionary<string, string?>
        {
            ["Auth-Method"] = "login",
            ["Auth-User"] = "bob",
            ["Auth-Pass"] = "secret-value",
            ["Auth-Protocol"] = "imap",
            ["Client-IP"] = "192.0.2.7",
            [name] = value,
        };

        Assert.False(NginxAuthRequest.TryParse(n => headers.GetValueOrDefault(n), out _, out var reason));
        Assert.DoesNotContain("secret-value", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void AuthPolicyRequest_DovecotReport_Parsed()
    {
        var json = """{"device_id":"","login":"alice","protocol":"imap","pwhash":"0a1","remote":"192.0.2.9","session_id":"abc","success":false,"policy_reject":false,"tls":true}"""u8;

        Assert.True(AuthPolicyRequest.TryParse(json, out var request));

        Assert.Equal("alice", request.Login);
        Assert.Equal("192.0.2.9", request.Remote!.ToString());
        Assert.False(request.Success);
        Assert.False(request.PolicyReject);
    }

    [Theory]
    [InlineData("")]
    [InlineData("null")]
    [InlineData("[]")]
    [InlineData("{\"login\":")]
    [InlineData("{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":1}}}}}")]
    public void AuthPolicyRequest_NotAnObject_False(string json) =>
        Assert.False(AuthPolicyRequest.TryParse(Encoding.UTF8.GetBytes(json), out _));

    [Fact]
    public void AuthPolicyRequest_WrongTypesAndBadAddress_Ignored()
    {
        Assert.True(AuthPolicyRequest.TryParse("""{"login":5,"remote":"999.1.1.1","success":"yes"}"""u8, out var request));

        Assert.Null(request.Login);
        Assert.Null(request.Remote);
        Assert.Null(request.Success);
    }

    [Fact]
    public void SourceFailurePolicy_Ipv6_CountedPer64()
    {
        Assert.Equal("2001:db8::/64", Broker.Core.Throttling.SourceNetwork.Host(System.Net.IPAddress.Parse("2001:db8::abcd")));
        Assert.Equal("192.0.2.1", Broker.Core.Throttling.SourceNetwork.Host(System.Net.IPAddress.Parse("::ffff:192.0.2.1")));
    }

    [Fact]
    public void DoveadmCommands_KickAndFlush_Serialised()
    {
        var json = Encoding.UTF8.GetString(DoveadmSessionKicker.Commands("al\"ice", flushAuthCache: true));

        Assert.Equal("""[["authCacheFlush",{"user":["al\u0022ice"]},"flush"],["kick",{"mask":"al\u0022ice"},"kick"]]""", json);
    }

    [Theory]
    [InlineData("alice@example.com")]
    [InlineData("jürgen@example.com")]
    [InlineData("bob")]
    [InlineData("1password@example.com")]
    [InlineData("cafe")]
    [InlineData("deadbeef")]
    [InlineData("a:b@example.com")]
    [InlineData("alice/ops@example.com")]
    public void DoveadmKickMask_OrdinaryName_IsKickedByName(string user) =>
        Assert.Null(DoveadmSessionKicker.MaskProblem(user));

    [Theory]
    [InlineData("*", "wildcard")]
    [InlineData("a*@example.com", "wildcard")]
    [InlineData("?lice@example.com", "wildcard")]
    [InlineData("192.0.2.1", "IPv4")]
    [InlineData("10.0.0.0/8", "IPv4")]
    [InlineData("0/0", "IPv4")]
    [InlineData("10", "IPv4")]
    [InlineData("127.1", "IPv4")]
    [InlineData("0x7f.1", "IPv4")]
    [InlineData("10.0.0.1 extra", "IPv4")]
    [InlineData("::/0", "IPv6")]
    [InlineData("2001:db8::1", "IPv6")]
    [InlineData("[2001:db8::1]", "IPv6")]
    [InlineData("", "empty")]
    public void DoveadmKickMask_WildcardOrAddress_IsNotKicked(string user, string why) =>
        Assert.Contains(why, DoveadmSessionKicker.MaskProblem(user), StringComparison.Ordinal);

    [Fact]
    public async Task DoveadmKick_WildcardName_NoRequestToDovecot()
    {
        using var handler = new CountingHandler();
        var kicker = new DoveadmSessionKicker(
            new SingleClientFactory(handler),
            new StaticDoveadmOptions(new DoveadmOptions { Url = "http://127.0.0.1:9", ApiKey = "k", Timeout = TimeSpan.FromSeconds(1) }),
            Microsoft.Extensions.Logging.Abstractions.NullLogger<DoveadmSessionKicker>.Instance);

        Assert.False(await kicker.KickAsync("*@example.com", CancellationToken.None));
        Assert.False(await kicker.KickAsync("192.0.2.0/24", CancellationToken.None));
        Assert.Equal(0, handler.Requests);
        Assert.True(await kicker.KickAsync("alice@example.com", CancellationToken.None));
        Assert.Equal(1, handler.Requests);
    }

    [Theory]
    [InlineData("""[["doveadmResponse",[],"kick"]]""", true)]
    [InlineData("""[["error",{"type":"exitCode","exitCode":68},"kick"]]""", true)]
    [InlineData("""[["error",{"type":"exitCode","exitCode":75},"kick"]]""", false)]
    [InlineData("""{"error":1}""", false)]
    [InlineData("not json", false)]
    public void DoveadmReply_Interpreted(string body, bool ok) =>
        Assert.Equal(ok, DoveadmSessionKicker.AllSucceeded(body));

    [Fact]
    public void PostfixNoChroot_ServiceLine_ChrootColumnCleared()
    {
        Assert.Equal("pickup    unix  n       -       n       60      1       pickup", PostfixServer.NoChroot("pickup    unix  n       -       y       60      1       pickup"));
        Assert.Equal("  -o x=y", PostfixServer.NoChroot("  -o x=y"));
    }

    private sealed class CountingHandler : HttpMessageHandler
    {
        public int Requests { get; private set; }

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Requests++;
            return Task.FromResult(new HttpResponseMessage(System.Net.HttpStatusCode.OK) { Content = new StringContent("""[["doveadmResponse",[],"kick"]]""") });
        }
    }

    private sealed class SingleClientFactory(HttpMessageHandler handler) : IHttpClientFactory
    {
        public HttpClient CreateClient(string name) => new(handler, disposeHandler: false);
    }

    private sealed class StaticDoveadmOptions(DoveadmOptions value) : Microsoft.Extensions.Options.IOptionsMonitor<DoveadmOptions>
    {
        public DoveadmOptions CurrentValue => value;

        public DoveadmOptions Get(string? name) => value;

        public IDisposable? OnChange(Action<DoveadmOptions, string?> listener) => null;
    }
}
