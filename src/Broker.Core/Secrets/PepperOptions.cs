using System.ComponentModel.DataAnnotations;

namespace Broker.Core.Secrets;

/// <summary>
/// The server secret ("pepper") that keys the hash of every app password. Without it, a copy
/// of Redis is useless to an attacker: the stored HMACs cannot be tested offline.
/// </summary>
public sealed class PepperOptions
{
    public const string SectionName = "Broker:Pepper";

    /// <summary>Base64 of at least 32 random bytes. Prefer <see cref="File"/> in production.</summary>
    public string? Value { get; set; }

    /// <summary>Path of a file whose content is the base64 pepper (for example a mounted secret).</summary>
    public string? File { get; set; }

    /// <summary>
    /// When neither <see cref="Value"/> nor <see cref="File"/> is set: generate a pepper into this
    /// file on first start and reuse it afterwards. The embedded host sets it inside its data
    /// directory; production configuration leaves it empty so a missing pepper stops start-up.
    /// </summary>
    public string? GenerateFile { get; set; }

    /// <summary>
    /// The other pepper during a rotation (base64): app passwords hashed with it keep working, and
    /// each is re-keyed under the current pepper at its next successful login. Remove it once
    /// <c>broker pepper status</c> counts none left under it. Prefer <see cref="RotationFile"/>.
    /// </summary>
    public string? RotationValue { get; set; }

    /// <summary>Path of a file holding the other pepper of a rotation (see <see cref="RotationValue"/>).</summary>
    public string? RotationFile { get; set; }

    [Range(32, 1024)]
    public int MinimumBytes { get; set; } = 32;
}
