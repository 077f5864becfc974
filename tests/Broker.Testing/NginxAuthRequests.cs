namespace Broker.Testing;

/// <summary>What nginx's mail proxy sends to <c>auth_http</c>, and how its answer is read.</summary>
public static class NginxAuthRequests
{
    /// <summary>A first login attempt over IMAP with AUTH PLAIN; user and password as nginx sends them (percent-encoded).</summary>
    public static HttpRequestMessage Plain(string user, string pass, string clientIp)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/v1/nginx/auth");
        request.Headers.Add("Auth-Method", "plain");
        request.Headers.Add("Auth-User", user);
        request.Headers.Add("Auth-Pass", pass);
        request.Headers.Add("Auth-Protocol", "imap");
        request.Headers.Add("Auth-Login-Attempt", "1");
        request.Headers.Add("Client-IP", clientIp);
        return request;
    }

    /// <summary>One header of the answer (nginx reads Auth-Status, Auth-Server, …), or null.</summary>
    public static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? values.First() : null;
}
