// Elementwise operation of a stream with per-channel integer constants.
//
// out = in + c, in - c, c - in or in * c (OP 0..3), computed exactly in a wide
// signed width and truncated to OUT_BITS (the output type is chosen so nothing
// is lost). Beat j carries channels (j mod CF)*PE + p, p < PE; the constants of
// fold f are word f of CONST_FILE, lane p at bits [p*C_BITS +: C_BITS].
module eltwise_const #(
    parameter int PE        = 1,
    parameter int CF        = 1,
    parameter int IN_BITS   = 8,
    parameter bit IN_SIGNED = 1,
    parameter int C_BITS    = 8,
    parameter int OUT_BITS  = 16,
    parameter int OP        = 0,
    parameter     CONST_FILE = "const.dat"
) (
    input  logic                      clk,
    input  logic                      rst_n,
    input  logic [PE*IN_BITS-1:0]     in_tdata,
    input  logic                      in_tvalid,
    output logic                      in_tready,
    output logic [PE*OUT_BITS-1:0]    out_tdata,
    output logic                      out_tvalid,
    input  logic                      out_tready
);
    localparam int CW = $clog2(CF > 1 ? CF : 2);
    localparam int WW = IN_BITS + C_BITS + 2;

    logic [PE*C_BITS-1:0] consts [CF];
    initial $readmemh(CONST_FILE, consts);

    logic [CW-1:0]         f;
    logic [PE*OUT_BITS-1:0] y;
    logic                  fire;

    assign in_tready = !out_tvalid || out_tready;
    assign fire      = in_tvalid && in_tready;

    always_comb begin
        for (int p = 0; p < PE; p++) begin
            logic signed [WW-1:0] a, c, r;
            a = IN_SIGNED ? WW'($signed(in_tdata[p*IN_BITS +: IN_BITS]))
                          : WW'($unsigned(in_tdata[p*IN_BITS +: IN_BITS]));
            c = WW'($signed(consts[f][p*C_BITS +: C_BITS]));
            case (OP)
                0: r = a + c;
                1: r = a - c;
                2: r = c - a;
                default: r = a * c;
            endcase
            y[p*OUT_BITS +: OUT_BITS] = OUT_BITS'(r);
        end
    end

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            f <= '0;
            out_tvalid <= 1'b0;
        end else begin
            if (out_tready) out_tvalid <= 1'b0;
            if (fire) begin
                out_tvalid <= 1'b1;
                f <= (f == CW'(CF - 1)) ? '0 : f + 1'b1;
            end
        end
        if (fire) out_tdata <= y;
    end
endmodule
