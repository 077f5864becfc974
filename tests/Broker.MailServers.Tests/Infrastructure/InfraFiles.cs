namespace Broker.MailServers.Tests.Infrastructure;

/// <summary>
/// The configuration shipped in <c>infra/</c>, rendered for a test run: only addresses, ports, paths
/// and secrets are replaced, and every replaced text must occur, so a test can never silently run
/// against something other than what an admin installs.
/// </summary>
public static class InfraFiles
{
    public static string RepoRoot { get; } = FindRoot();

    public static string PathOf(string relative) => Path.Combine(RepoRoot, relative);

    public static string Render(string relative, params (string From, string To)[] replacements)
    {
        var text = File.ReadAllText(PathOf(relative));
        foreach (var (from, to) in replacements)
        {
            if (!text.Contains(from, StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"infra file {relative} no longer contains '{from}'; update the test's rendering.");
            }

            text = text.Replace(from, to, StringComparison.Ordinal);
        }

        return text;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Broker.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Cannot find the repository root (Broker.sln) above " + AppContext.BaseDirectory);
    }
}
