using Broker.Portal.Totp;
using OtpNet;

namespace Broker.Portal.Tests.Totp;

public sealed class TotpCheckTests
{
    private static readonly string Key = Base32Encoding.ToString(KeyGeneration.GenerateRandomKey(20));
    private static readonly DateTimeOffset Now = new(2026, 11, 25, 12, 0, 15, TimeSpan.Zero);

    [Theory]
    [InlineData(-30)]
    [InlineData(0)]
    [InlineData(30)]
    public void Check_WithinOneStep_Accepted(int offsetSeconds) =>
        Assert.True(TotpService.Check(Key, TotpService.Compute(Key, Now.AddSeconds(offsetSeconds)), Now, 0, out _));

    [Theory]
    [InlineData(-60)]
    [InlineData(60)]
    [InlineData(-3600)]
    public void Check_TwoOrMoreStepsAway_Rejected(int offsetSeconds) =>
        Assert.False(TotpService.Check(Key, TotpService.Compute(Key, Now.AddSeconds(offsetSeconds)), Now, 0, out _));

    [Fact]
    public void Check_SameStepAgain_Rejected()
    {
        var code = TotpService.Compute(Key, Now);
        Assert.True(TotpService.Check(Key, code, Now, 0, out var step));
        Assert.False(TotpService.Check(Key, code, Now, step, out _));
        // An older code is a replay too, even inside the window.
        Assert.False(TotpService.Check(Key, TotpService.Compute(Key, Now.AddSeconds(-30)), Now, step, out _));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("12345")]
    [InlineData("1234567")]
    [InlineData("abcdef")]
    public void Check_Malformed_Rejected(string? code) => Assert.False(TotpService.Check(Key, code, Now, 0, out _));

    [Fact]
    public void Check_WithSpaces_Accepted()
    {
        var code = TotpService.Compute(Key, Now);
        Assert.True(TotpService.Check(Key, code[..3] + " " + code[3..], Now, 0, out _));
    }
}
