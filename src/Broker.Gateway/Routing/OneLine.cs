namespace Broker.Gateway.Routing;

/// <summary>An exception as one log line, without its stack trace.</summary>
internal static class OneLine
{
    /// <summary>
    /// The message and those of the inner exceptions that add to it: a TLS failure says only "see
    /// inner exception" on top, and YARP's own warnings, which would show the inner ones with their
    /// stack traces, are turned down.
    /// </summary>
    public static string Reasons(Exception ex)
    {
        ArgumentNullException.ThrowIfNull(ex);
        var text = ex.Message;
        for (var inner = ex.InnerException; inner is not null; inner = inner.InnerException)
        {
            if (!text.Contains(inner.Message, StringComparison.Ordinal))
            {
                text += " -- " + inner.Message;
            }
        }

        return text;
    }
}
