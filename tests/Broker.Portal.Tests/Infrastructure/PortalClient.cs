using System.Net;
using System.Text.RegularExpressions;

namespace Broker.Portal.Tests.Infrastructure;

/// <summary>A browser-like HTTP client: cookies, no automatic redirects, forms posted with their antiforgery token.</summary>
public sealed partial class PortalClient : IDisposable
{
    private readonly HttpClient _http;

    public PortalClient(Uri baseAddress)
    {
        Cookies = new CookieContainer();
        _http = new HttpClient(new HttpClientHandler { CookieContainer = Cookies, AllowAutoRedirect = false })
        {
            BaseAddress = baseAddress,
            Timeout = TimeSpan.FromSeconds(30),
        };
    }

    public CookieContainer Cookies { get; }

    public HttpClient Http => _http;

    /// <summary>GET following redirects; returns the final page.</summary>
    public async Task<PageResponse> GetAsync(string path)
    {
        var response = await _http.GetAsync(path);
        return await FollowAsync(response);
    }

    /// <summary>GET without following redirects.</summary>
    public async Task<PageResponse> GetRawAsync(string path) => await PageResponse.ReadAsync(await _http.GetAsync(path));

    /// <summary>Loads <paramref name="page"/>, then posts <paramref name="fields"/> to its handler with the page's antiforgery token.</summary>
    public async Task<PageResponse> SubmitAsync(string page, string? handler, IEnumerable<KeyValuePair<string, string>> fields, bool follow = true)
    {
        var form = await GetAsync(page);
        Assert.True(form.Status == HttpStatusCode.OK, $"GET {page} answered {(int)form.Status} at {form.Url}");
        return await PostAsync(form.Url, handler, fields, form.AntiforgeryToken(), follow);
    }

    /// <summary>Posts to a page handler with an explicit token (null: no token).</summary>
    public async Task<PageResponse> PostAsync(string page, string? handler, IEnumerable<KeyValuePair<string, string>> fields, string? token, bool follow = true)
    {
        var all = fields.ToList();
        if (token is not null)
        {
            all.Add(new("__RequestVerificationToken", token));
        }

        var path = page.Split('?')[0];
        var url = handler is null ? path : $"{path}?handler={handler}";
        var response = await _http.PostAsync(url, new FormUrlEncodedContent(all));
        return follow ? await FollowAsync(response) : await PageResponse.ReadAsync(response);
    }

    private async Task<PageResponse> FollowAsync(HttpResponseMessage response)
    {
        for (var i = 0; i < 10 && response.StatusCode is HttpStatusCode.Redirect or HttpStatusCode.Found or HttpStatusCode.SeeOther; i++)
        {
            var location = response.Headers.Location!;
            response.Dispose();
            response = await _http.GetAsync(location);
        }

        return await PageResponse.ReadAsync(response);
    }

    public void Dispose() => _http.Dispose();
}

/// <summary>Status, final URL, headers and body of one response.</summary>
public sealed partial class PageResponse
{
    public required HttpStatusCode Status { get; init; }

    public required string Url { get; init; }

    public required string Html { get; init; }

    public required HttpResponseMessage Message { get; init; }

    public string? Location => Message.Headers.Location?.ToString();

    public static async Task<PageResponse> ReadAsync(HttpResponseMessage response) => new()
    {
        Status = response.StatusCode,
        Url = response.RequestMessage!.RequestUri!.PathAndQuery,
        Html = await response.Content.ReadAsStringAsync(),
        Message = response,
    };

    public string AntiforgeryToken()
    {
        var m = TokenRegex().Match(Html);
        Assert.True(m.Success, $"no antiforgery token on {Url}");
        return WebUtility.HtmlDecode(m.Groups[1].Value);
    }

    /// <summary>Inner text of the element with this id.</summary>
    public string TextOf(string id)
    {
        var m = Regex.Match(Html, $"<(\\w+)\\b[^>]*\\bid=\"{Regex.Escape(id)}\"[^>]*>(.*?)</\\1>", RegexOptions.Singleline);
        Assert.True(m.Success, $"no element #{id} on {Url}");
        return WebUtility.HtmlDecode(Regex.Replace(m.Groups[2].Value, "<[^>]+>", " ")).Trim();
    }

    public IReadOnlyList<string> RecoveryCodes() =>
        [.. Regex.Matches(Html, "<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>").Select(m => m.Groups[1].Value)];

    public string? HiddenValue(string name)
    {
        var m = Regex.Match(Html, $"name=\"{Regex.Escape(name)}\" value=\"([^\"]*)\"");
        return m.Success ? WebUtility.HtmlDecode(m.Groups[1].Value) : null;
    }

    [GeneratedRegex("name=\"__RequestVerificationToken\" type=\"hidden\" value=\"([^\"]+)\"")]
    private static partial Regex TokenRegex();
}
