using Broker.Portal.Accounts;

namespace Broker.Portal.Tests.Accounts;

public sealed class RefusalPacingTests
{
    [Theory]
    [InlineData(0, 500, 500)]
    [InlineData(100, 500, 400)]
    [InlineData(115, 500, 385)] // 15 ms more work, same moment of answer
    [InlineData(499, 500, 1)]
    [InlineData(500, 500, 0)]
    [InlineData(501, 500, 499)] // past the first beat: the next one, not "at once"
    [InlineData(1_200, 500, 300)]
    [InlineData(-5, 500, 500)] // a clock that went backwards counts as no time spent
    public void Remaining_WaitsForTheNextMultipleOfTheInterval(int elapsedMs, int intervalMs, int expectedMs) =>
        Assert.Equal(TimeSpan.FromMilliseconds(expectedMs), RefusalPacing.Remaining(TimeSpan.FromMilliseconds(elapsedMs), TimeSpan.FromMilliseconds(intervalMs)));

    [Fact]
    public void Remaining_IsZeroWhenPacingIsOff() =>
        Assert.Equal(TimeSpan.Zero, RefusalPacing.Remaining(TimeSpan.FromMilliseconds(123), TimeSpan.Zero));

    [Fact]
    public void Remaining_AnswersAnExistingAndAnUnknownAccountAtTheSameMoment()
    {
        // What the pacing is for: the same refusal with and without its database writes.
        var interval = TimeSpan.FromMilliseconds(500);
        var unknown = TimeSpan.FromMilliseconds(100.3);
        var existing = TimeSpan.FromMilliseconds(115.9);
        Assert.Equal(unknown + RefusalPacing.Remaining(unknown, interval), existing + RefusalPacing.Remaining(existing, interval));
    }
}
