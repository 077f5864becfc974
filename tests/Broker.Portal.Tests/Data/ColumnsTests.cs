using Broker.Portal.Data;

namespace Broker.Portal.Tests.Data;

public sealed class ColumnsTests
{
    [Theory]
    [InlineData("abc", 5, "abc")]
    [InlineData("abcdef", 3, "abc")]
    [InlineData("ab\U0001F600", 4, "ab\U0001F600")]
    [InlineData("ab\U0001F600", 3, "ab")]
    [InlineData("ab\U0001F600c", 4, "ab\U0001F600")]
    [InlineData("\U0001F600", 1, "")]
    [InlineData("abc", 0, "")]
    public void Clip_NeverSplitsASurrogatePair(string value, int max, string expected) =>
        Assert.Equal(expected, Columns.Clip(value, max));
}
