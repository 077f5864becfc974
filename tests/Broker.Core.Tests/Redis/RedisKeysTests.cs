using Broker.Core.Redis;

namespace Broker.Core.Tests.Redis;

public sealed class RedisKeysTests
{
    private readonly RedisKeys _keys = new("broker");

    [Fact]
    public void UserKeys_ShareOneHashTag()
    {
        Assert.Equal("broker:{u:alice}:c:ab12", _keys.Credential("alice", "ab12"));
        Assert.Equal("broker:{u:alice}:ids", _keys.CredentialIds("alice"));
        Assert.Equal("broker:{u:alice}:meta", _keys.UserMeta("alice"));
    }

    [Theory]
    [InlineData("a}b", "a%7Db")]
    [InlineData("{x}", "%7Bx%7D")]
    [InlineData("100%", "100%25")]
    public void UserPrefix_EscapesBracesSoTheTagCannotEndEarly(string user, string escaped)
    {
        Assert.Equal($"broker:{{u:{escaped}}}", _keys.UserPrefix(user));
    }

    [Fact]
    public void EscapeTag_KeepsDistinctUsersDistinct()
    {
        Assert.NotEqual(RedisKeys.EscapeTag("a%7Db"), RedisKeys.EscapeTag("a}b"));
    }
}
