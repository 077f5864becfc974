using System.Security.Cryptography;
using System.Text;
using Broker.Core.Secrets;

namespace Broker.Core.AppPasswords;

/// <summary>
/// Keyed hash of a canonical app password: HMAC-SHA256 with the pepper, bound to the owner so
/// that the same secret under another username is a different hash. This is the only form in
/// which an app password is ever stored.
/// </summary>
public sealed class AppPasswordHasher(Pepper pepper)
{
    public const int HashBytes = 32;

    /// <summary>The current pepper's <see cref="Pepper.Id"/>, stored with each app password hashed under it.</summary>
    public string PepperId => pepper.Id;

    /// <summary>Whether a rotation is under way (<see cref="PepperOptions.RotationFile"/>).</summary>
    public bool Rotating => pepper.Other is not null;

    /// <summary>Hex of HMAC-SHA256(pepper, owner ‖ 0x00 ‖ canonical).</summary>
    public string Hash(string normalizedOwner, string canonicalPassword) => Hash(pepper.Key, normalizedOwner, canonicalPassword);

    /// <summary>The same under the rotation's other pepper; null when no rotation is under way.</summary>
    public string? HashUnderOther(string normalizedOwner, string canonicalPassword) =>
        pepper.Other is { } other ? Hash(other, normalizedOwner, canonicalPassword) : null;

    private static string Hash(ReadOnlySpan<byte> key, string normalizedOwner, string canonicalPassword)
    {
        var ownerLength = Encoding.UTF8.GetByteCount(normalizedOwner);
        var buffer = ownerLength + 1 + canonicalPassword.Length <= 512
            ? stackalloc byte[ownerLength + 1 + canonicalPassword.Length]
            : new byte[ownerLength + 1 + canonicalPassword.Length];
        Encoding.UTF8.GetBytes(normalizedOwner, buffer);
        buffer[ownerLength] = 0;
        Encoding.ASCII.GetBytes(canonicalPassword, buffer[(ownerLength + 1)..]);

        Span<byte> mac = stackalloc byte[HashBytes];
        HMACSHA256.HashData(key, buffer, mac);
        return Convert.ToHexStringLower(mac);
    }

    /// <summary>Constant-time equality of two hex hashes.</summary>
    public static bool FixedTimeEquals(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(a), Encoding.ASCII.GetBytes(b));
}
